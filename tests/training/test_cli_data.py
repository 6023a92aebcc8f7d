"""`forecast datasets` and `forecast baseline` through the real typer app."""

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from training.cli import app
from training.data.catalogue import data_dir

runner = CliRunner()


def test_datasets_json_lists_all_nine_with_row_counts() -> None:
    result = runner.invoke(app, ["datasets", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert len(rows) == 9
    assert rows["load/etth1"]["rows"] == 17420 and rows["load/etth1"]["series"] == 1
    assert rows["demand/sales-weekly"]["series"] == 811
    assert rows["demand/sales-weekly"]["rows"] == 811 * 52
    assert rows["demand/bike-hourly"]["rows"] == 17544
    assert rows["stock/aapl"]["frequency"] == "B"
    assert set(rows["load/pjm"]) == {
        "name",
        "domain",
        "rows",
        "series",
        "frequency",
        "start",
        "end",
        "target",
    }


def test_baseline_ett_naive_matches_numpy_by_hand() -> None:
    result = runner.invoke(
        app, ["baseline", "load/etth1", "--protocol", "ett", "--horizon", "96", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["windows"] == 2785 and out["protocol"] == "ett" and out["horizon"] == 96
    # The check the issue asks for, in a few lines of NumPy.
    ot = pd.read_csv(data_dir() / "load" / "ETTh1.csv")["OT"].to_numpy()[:14400]
    z = (ot - ot[:8640].mean()) / ot[:8640].std()
    starts = np.arange(11520, 14400 - 96 + 1)
    actual = z[starts[:, None] + np.arange(96)]
    expected = np.mean((actual - z[starts - 1][:, None]) ** 2)
    assert abs(out["baselines"]["naive"]["mse"] - expected) < 1e-9
    assert set(out["baselines"]) == {"naive", "seasonal_naive", "kalman"}
    assert out["baselines"]["seasonal_naive"]["season"] == 24


def test_baseline_table_output() -> None:
    result = runner.invoke(app, ["baseline", "stock/goog", "--horizon", "5"])
    assert result.exit_code == 0, result.output
    assert "kalman" in result.stdout and "seasonal_naive" in result.stdout


def test_baseline_bad_input_exits_2_with_one_line() -> None:
    cases = [
        (["baseline", "load/nope", "--horizon", "5"], "load/nope"),
        (["baseline", "load/etth1", "--horizon", "0"], "--horizon must be at least 1, got 0"),
        (["baseline", "stock/goog", "--horizon", "5", "--protocol", "ett"], "--protocol ett"),
        (["baseline", "load/etth1", "--horizon", "5", "--protocol", "x"], "--protocol must be"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.stderr
        assert "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
