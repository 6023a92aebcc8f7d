"""How every benchmark reports: one JSON line per result as soon as it is measured, then (unless
--json) a small text table of the same rows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

Column = tuple[str, str, str]  # (row key, header, format spec such as ">7.4f")


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
