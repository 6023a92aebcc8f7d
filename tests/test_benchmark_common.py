"""benchmarks.common: the report (JSON lines as results arrive, then an aligned table) and the
shared --horizon and --data arguments."""

from __future__ import annotations

import json

import pytest

from benchmarks.common import report

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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--horizon", "24,x"], "--horizon '24,x': use comma-separated integers, e.g. 24,96"),
        (["--horizon", "0"], "--horizon '0': every horizon must be >= 1"),
        (["--data", "/nope.csv"], "--data '/nope.csv' does not exist; pass the path of an ETT CSV"),
    ],
)
def test_bad_benchmark_arguments_exit_2_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.ett import parse_args

    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_benchmark_arguments_default_to_etth1() -> None:
    from benchmarks.ett import parse_args

    args = parse_args(["--horizon", "24, 96"])
    assert args.horizons == [24, 96] and args.data.endswith("ETTh1.csv")
