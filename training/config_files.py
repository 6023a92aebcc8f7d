"""Our TOML files (experiments, schedules): one reader, and pydantic errors as our messages.

Each file's layout is a pydantic model that forbids unknown keys; `invalid` turns its
`ValidationError` into an ExperimentError with one line per problem, naming the file, the key
with its table, the value and the fix, e.g.
"configs/x.toml: [model] hiden_size: unknown key; did you mean hidden_size?".
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, StrictStr, ValidationError
from pydantic_core import ErrorDetails

from training.errors import ExperimentError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_NOT_A_TABLE = ("model_type", "dict_type", "dataclass_type", "model_attributes_type")


def read_toml(path: str | Path, kind: str, example: str) -> dict[str, Any]:
    """The document of TOML file `path` (a `kind` such as "schedule file").

    Raises:
        ExperimentError: the file is missing, or its TOML is invalid (with line and column).
    """
    file = Path(path)
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExperimentError(
            f"--config {str(file)!r}: file not found. Fix: pass an existing {kind}, e.g. {example}"
        ) from None
    except tomllib.TOMLDecodeError as exc:  # its text ends "(at line L, column C)"
        raise ExperimentError(f"{file}: invalid TOML: {exc}. Fix the syntax there") from None


def _model_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError(
            "a model name has letters, digits, '.', '_' or '-', starts with a letter or digit "
            "and is at most 128 long. Fix: e.g. load-etth1"
        )
    return value


ModelName = Annotated[StrictStr, AfterValidator(_model_name)]


def invalid(exc: ValidationError, where: str | None, schema: Any) -> ExperimentError:
    """`exc` (from validating `schema`) as an ExperimentError, one line per problem, each
    starting with `where` (the file; None for CLI flags)."""
    lines = (line for error in exc.errors() for line in _line(error, schema).splitlines())
    return ExperimentError("\n".join(f"{where}: {line}" if where else line for line in lines))


def unknown_key(key: str, known: Sequence[str]) -> str:
    """The words "unknown key" with the closest known key, or else every known key."""
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]}?" if close else f"Fix: use one of {', '.join(known)}"
    return f"unknown key; {hint}"


def _line(error: ErrorDetails, schema: Any) -> str:
    loc = error["loc"]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    table, _, key = path.rpartition(".")
    label = f"[{table}] {key}" if table else key
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in _UNKNOWN:
        return f"{label}: {unknown_key(str(loc[-1]), _keys(schema, loc[:-1]))}"
    if error["type"] == "missing":
        return f"{label}: missing. Fix: add {loc[-1]} = ..."
    if error["type"] in _NOT_A_TABLE:
        return f"{label} = {error['input']!r}: must be a table. Fix: [{label}] with its keys"
    if not loc:  # a rule across fields: its message names them
        return message
    return f"{label} = {error['input']!r}: {message[:1].lower()}{message[1:]}"


def _keys(schema: Any, loc: Sequence[int | str]) -> list[str]:
    """The keys the table at `loc` of `schema` (a pydantic model or dataclass) admits."""
    for part in loc:
        if isinstance(part, str):
            schema = schema.__pydantic_fields__[part].annotation
    return list(schema.__pydantic_fields__)
