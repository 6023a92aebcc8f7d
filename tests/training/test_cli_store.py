"""`forecast load-series`: real CLI invocations against a real SQLite (or PostgreSQL) store."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from tests.training.test_store import store_url_fixture  # noqa: F401
from training.cli import app
from training.store import SeriesStore

runner = CliRunner()

CSV = """
when,load,temp
2024-01-01 00:00,1.0,10
2024-01-01 01:00,2.0,11
2024-01-01 02:00,3.0,12
2024-01-01 03:00,4.0,13
2024-01-01 04:00,5.0,14
2024-01-01 05:00,6.0,15
2024-01-01 06:00,7.0,16
2024-01-01 07:00,8.0,17
2024-01-01 08:00,9.0,18
2024-01-01 09:00,10.0,19
2024-01-01 10:00,11.0,20
2024-01-01 11:00,12.0,21
"""


def invoke(*args: str) -> Result:
    return runner.invoke(app, ["load-series", *args])


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def csv_file(write_csv: Callable[[str, str], Path]) -> Path:
    return write_csv("site.csv", CSV)


def test_a_csv_is_loaded_in_chunks_and_a_rerun_updates_in_place(
    store_url: str,
    csv_file: Path,
) -> None:
    args = (
        str(csv_file),
        "--series-id",
        "site-1",
        "--database-url",
        store_url,
        "--time-col",
        "when",
        "--target-col",
        "load",
        "--covariates",
        "temp",
        "--chunk-size",
        "5",
    )
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    summary = first.stdout.strip()
    assert re.fullmatch(
        rf"loaded 12 observations of {re.escape(str(csv_file))} into series 'site-1': "
        r"12 inserted, 0 updated, 2024-01-01T00:00:00 \.\. 2024-01-01T11:00:00, frequency h, "
        r"store \S+",
        summary,
    ), summary
    assert "loading site-1" in first.stderr  # the progress bar
    second = invoke(*args)
    assert "12 observations" in second.stdout and "0 inserted, 12 updated" in second.stdout
    with SeriesStore(store_url) as store:
        info = store.get_series("site-1")
        _, values, covs = store.observations("site-1")
    assert (info.frequency, info.target, info.count) == ("h", "load", 12)
    assert info.metadata == {
        "source": str(csv_file),
        "source_series": "site",
        "covariates": ["temp"],
    }
    np.testing.assert_array_equal(values, np.arange(1.0, 13.0))
    np.testing.assert_array_equal(covs["temp"], np.arange(10.0, 22.0))


def test_a_multi_series_dataset_needs_source_series(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'series.db'}"
    line = one_error_line(invoke("demand/sales-weekly", "--series-id", "p1", "--database-url", url))
    assert line == (
        "error: bundled:demand/sales-weekly holds 811 series (P1, P10, P100, P101, "
        "P102, ...). Fix: pick one with --source-series"
    )
    line = one_error_line(
        invoke(
            "demand/sales-weekly",
            "--series-id",
            "p1",
            "--database-url",
            url,
            "--source-series",
            "P0",
        )
    )
    assert line.startswith(
        "error: --source-series 'P0' is not a series of "
        "bundled:demand/sales-weekly; it holds: P1, P10"
    )
    ok = invoke(
        "demand/sales-weekly", "--series-id", "p1", "--database-url", url, "--source-series", "P1"
    )
    assert ok.exit_code == 0, ok.output
    assert (
        "loaded 52 observations of bundled:demand/sales-weekly (series P1) into series "
        "'p1': 52 inserted, 0 updated, 2017-01-02T00:00:00 .. 2017-12-25T00:00:00, "
        "frequency W" in ok.stdout
    )
    with SeriesStore(url) as store:
        assert store.get_series("p1").count == 52


def test_the_database_url_comes_from_the_environment(
    tmp_path: Path, csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env" / "series.db"
    monkeypatch.setenv("FORECAST_DATABASE_URL", f"sqlite:///{path}")
    result = invoke(
        str(csv_file),
        "--series-id",
        "s",
        "--time-col",
        "when",
        "--target-col",
        "load",
        "--freq",
        "h",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(f"store sqlite:///{path}")
    with SeriesStore(f"sqlite:///{path}") as store:
        assert store.get_series("s").count == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("load/etth1", "--time-col", "date"),
            "error: --time-col applies to files, not to the bundled dataset 'load/etth1'. "
            "Fix: drop --time-col",
        ),
        (
            ("nowhere.csv",),
            "error: 'nowhere.csv' is neither a bundled dataset (load/etth1, load/pjm, ",
        ),
        (
            ("{csv}",),
            "error: reading the file {csv} needs --time-col and --target-col. Fix: pass the "
            "names of its timestamp and target columns",
        ),
        (
            ("{csv}", "--time-col", "when", "--target-col", "nope"),
            "error: {csv}: column 'nope' not found; the file has columns: when, load, temp",
        ),
        (
            ("{csv}", "--time-col", "when", "--target-col", "load", "--database-url", "mysql://x"),
            "error: database URL scheme 'mysql' is not supported by the series store",
        ),
        (
            ("{csv}", "--time-col", "when", "--target-col", "load", "--chunk-size", "0"),
            "error: --chunk-size must be at least 1, got 0",
        ),
    ],
)
def test_bad_invocations_exit_2_with_one_line(
    tmp_path: Path, csv_file: Path, args: tuple[str, ...], message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'series.db'}"
    filled = [arg.format(csv=csv_file) for arg in args]
    if "--database-url" not in filled:
        filled += ["--database-url", url]
    line = one_error_line(invoke(*filled, "--series-id", "s"))
    assert line.startswith(message.format(csv=csv_file)), line


def test_a_frequency_clash_with_the_stored_series_exits_2(tmp_path: Path, csv_file: Path) -> None:
    url = f"sqlite:///{tmp_path / 'series.db'}"
    with SeriesStore(url) as store:
        store.upsert_series("s", frequency="D", target="load")
        store.upsert_observations("s", ["2024-01-01"], [1.0])
    line = one_error_line(
        invoke(
            str(csv_file),
            "--series-id",
            "s",
            "--database-url",
            url,
            "--time-col",
            "when",
            "--target-col",
            "load",
        )
    )
    assert line == (
        "error: series 's' has 1 observations at frequency 'D'; frequency cannot "
        "change to 'h'. Fix: create a new series id"
    )
