"""What every `forecast` command shares: the rich consoles and the user-error policy.

A command module imports its helpers from here and its shared options from
`training.cli.options`; the typer app itself is assembled in
`training.cli` (the package's `__init__`), which names every command explicitly.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn

from training.errors import USER_ERRORS

# Piped output (CI logs, `| less`) gets a wide fixed width instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def emit(obj: Any) -> None:
    """Print `obj` as the one JSON object on stdout (what it cannot encode, as text)."""
    typer.echo(json.dumps(obj, default=str))


def say(text: str, *, err: bool = False) -> None:
    """Print `text` as it is (no markup, no highlighting, long lines not wrapped), to stderr
    with `err`."""
    (err_console if err else console).print(text, markup=False, highlight=False, soft_wrap=True)


def progress_bar(*counts: ProgressColumn, err: bool = False) -> Progress:
    """A progress bar (on stderr with `err`): the task's description, the bar, `counts`, the
    time elapsed."""
    bar = (TextColumn("[bold]{task.description}"), BarColumn(), *counts, TimeElapsedColumn())
    return Progress(*bar, console=err_console if err else console)


def fail(message: str) -> typer.Exit:
    """Print one error line to stderr and return the exit (code 2) for the caller to raise."""
    say(f"error: {message}", err=True)
    return typer.Exit(code=2)


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn our ValueError subclasses into one line + exit code 2; bugs keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)

    return wrapper


@contextlib.contextmanager
def json_stdout(as_json: bool) -> Iterator[None]:
    """Keep stdout for the one JSON object: while the library runs, its prints go to stderr.

    MLflow prints "View run ... at: http://..." to stdout when tracking to a server; under
    `--json` that would break the one-object contract, so it is redirected to stderr.
    """
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        yield
