"""benchmarks.table.report: JSON lines as results arrive, then an aligned table."""

from __future__ import annotations

import json

import pytest

from benchmarks.table import report

COLUMNS = [("family", "family", "6"), ("horizon", "H", ">4"), ("mse", "mse", ">7.4f")]
ROWS = [
    {"family": "gru", "horizon": 24, "mse": 0.025981},
    {"family": "esn", "horizon": 720, "mse": 0.078},
]


def test_each_result_is_printed_before_the_next_is_measured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printed: list[int] = []

    def results():  # type: ignore[no-untyped-def]
        for row in ROWS:
            yield row
            printed.append(capsys.readouterr().out.count("\n"))  # lines out when resumed

    report(results(), COLUMNS, as_json=True)
    assert printed == [1, 1]  # one JSON line per result, flushed before measuring the next
    assert capsys.readouterr().out == ""


def test_the_table_follows_the_json_lines_aligned_to_the_headers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report(iter(ROWS), COLUMNS, as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines[:2]] == ROWS
    assert lines[2:] == [
        "",
        "family    H     mse",
        "gru      24  0.0260",
        "esn     720  0.0780",
    ]
