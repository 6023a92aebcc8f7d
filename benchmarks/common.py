"""What the ETT benchmark scripts share: the --horizon and --data arguments, and how they report
(one JSON line per result as soon as it is measured, then, unless --json, a small table)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from training.data.catalogue import BUNDLED, data_dir

Column = tuple[str, str, str]  # (row key, header, format spec such as ">7.4f")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--horizon (comma-separated) and --data (an ETT-format CSV, default ETTh1)."""
    parser.add_argument("--horizon", default="24,96", help="comma-separated, e.g. 24,96,720")
    parser.add_argument("--data", default=None, help="an ETT-format CSV (default: ETTh1)")


def check_data_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Set args.horizons and args.data, or exit 2 naming the flag and the fix."""
    try:
        args.horizons = [int(h) for h in args.horizon.split(",") if h.strip()]
    except ValueError:
        parser.error(f"--horizon {args.horizon!r}: use comma-separated integers, e.g. 24,96")
    if not args.horizons or min(args.horizons) < 1:
        parser.error(f"--horizon {args.horizon!r}: every horizon must be >= 1")
    if args.data is None:
        args.data = str(data_dir() / BUNDLED["load/etth1"].path)
    if not Path(args.data).is_file():
        parser.error(f"--data {args.data!r} does not exist; pass the path of an ETT CSV")


def report(results: Iterable[dict[str, Any]], columns: Sequence[Column], as_json: bool) -> None:
    """Print each result of `results` (a generator: measured lazily) as JSON, then the table."""
    rows = []
    for row in results:
        rows.append(row)
        print(json.dumps(row), flush=True)
    if as_json:
        return
    widths = [_width(column) for column in columns]
    print("\n" + " ".join(f"{h:>{w}}" for (_, h, _), w in zip(columns, widths, strict=True)))
    for row in rows:
        cells = (format(row[key], spec) for key, _, spec in columns)
        print(" ".join(f"{cell:>{w}}" for cell, w in zip(cells, widths, strict=True)))


def _width(column: Column) -> int:
    """The header's length, or the width the format spec asks for if wider."""
    _, header, spec = column
    digits = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
    return max(len(header), int(digits or 0))
