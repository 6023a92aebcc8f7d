"""`forecast train / compare / promote` through typer's CliRunner, plus one real subprocess."""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app

from .test_tracking import fresh_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return fresh_store(tmp_path_factory, "cli")


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small experiment file: an ESN (no epochs) on the newest 400 ETTh1 hours."""
    path = tmp_path_factory.mktemp("configs") / "tiny.toml"
    path.write_text(
        'family = "esn"\nhorizon = 6\n[data]\ndataset = "load/etth1"\nlast_rows = 400\n'
        '[model]\nlookback = 24\nreservoir_size = 30\ndevice = "cpu"\n'
    )
    return path


@pytest.fixture(scope="module")
def trained(runner: CliRunner, uri: str, experiment: Path) -> list[dict[str, object]]:
    """Two versions of load-etth1 trained through `train --config ... --json`."""
    outputs = []
    for _ in range(2):
        result = runner.invoke(
            app,
            # champion mechanics here; the baseline floor: test_gate_baselines
            [
                "train",
                "--config",
                str(experiment),
                "--tracking-uri",
                uri,
                "--json",
                "--allow-worse-than-baseline",
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.stdout))
    return outputs


def test_train_json_prints_exactly_one_object(trained: list[dict[str, object]]) -> None:
    first, second = trained
    assert set(first) >= {"run_id", "experiment", "model_name", "version", "promoted",
                          "champion_version", "metrics", "baselines"}  # fmt: skip
    assert first["model_name"] == "load-etth1" and first["version"] == 1
    assert first["promoted"] is True and first["champion_version"] == 1
    metrics = first["metrics"]
    assert isinstance(metrics, dict)
    for key in ("test_mse", "test_mae", "test_mase", "test_smape", "test_coverage_80",
                "test_coverage_95"):  # fmt: skip
        assert isinstance(metrics[key], float)
    assert set(first["baselines"]) == {"naive", "seasonal_naive", "kalman"}  # type: ignore[call-overload]
    # Same spec, same seed: identical scores, so the 1% gate keeps v1.
    assert second["version"] == 2 and second["promoted"] is False
    assert second["champion_version"] == 1


def test_train_table_output_shows_baselines_and_the_gate(
    runner: CliRunner, uri: str, experiment: Path
) -> None:
    gru = experiment.with_name("gru.toml")
    gru.write_text(
        experiment.read_text().replace("reservoir_size = 30", "hidden_size = 8\nepochs = 2")
    )
    result = runner.invoke(
        app,
        [
            "train",
            "--config",
            str(gru),
            "--family",
            "gru",
            "--name",
            "etth1-table",
            "--tracking-uri",
            uri,
            "--allow-worse-than-baseline",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "seasonal_naive" in result.stdout
    assert "kalman" in result.stdout
    assert "2/2 epochs" in result.stdout
    assert "etth1-table v1 promoted to champion (no champion yet" in result.stdout


def test_compare_json_plot_and_promote(
    runner: CliRunner, uri: str, trained: list[dict[str, object]], tmp_path: Path
) -> None:
    plot = tmp_path / "cmp.png"
    result = runner.invoke(
        app, ["compare", "load-etth1", "--tracking-uri", uri, "--json", "--plot", str(plot)]
    )
    assert result.exit_code == 0, result.output
    board = json.loads(result.stdout)
    assert board["champion_version"] == 1
    assert sorted(r["version"] for r in board["versions"]) == [1, 2]
    row = board["versions"][0]
    assert row["family"] == "esn"
    assert row["mae_vs_seasonal_naive"] == pytest.approx(
        row["test_mae"] / row["seasonal_naive_test_mae"]
    )
    assert plot.read_bytes()[:4] == b"\x89PNG"

    result = runner.invoke(
        app,
        [
            "promote",
            "load-etth1",
            "2",
            "--reason",
            "manual check",
            "--tracking-uri",
            uri,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "model_name": "load-etth1",
        "champion_version": 2,
        "previous_champion": 1,
        "user": getpass.getuser(),
        "reason": "manual check",
        "contract_changes": [],
    }
    table = runner.invoke(app, ["compare", "load-etth1", "--tracking-uri", uri])
    assert table.exit_code == 0, table.output
    assert "2*" in table.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def goog_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The last 300 rows of the bundled GOOG file, as a user would export them."""
    table = pd.read_csv(REPO / "data" / "stock" / "GOOG.csv").tail(300)
    path = tmp_path_factory.mktemp("user") / "goog.csv"
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--dataset", "load/nope", "--family", "gru", "--horizon", "5"],
            "error: dataset 'load/nope' is not bundled; choose one of: load/etth1",
        ),
        (
            ["--dataset", "load/etth1", "--family", "cnn", "--horizon", "5"],
            "error: family = 'cnn': input should be 'lstm', 'gru', 'rnn', 'esn'",
        ),
        (
            ["--dataset", "load/etth1", "--family", "gru", "--horizon", "0"],
            "error: horizon = 0: input should be greater than or equal to 1",
        ),
        (
            [
                "--data",
                "{csv}",
                "--time-col",
                "Date",
                "--target-col",
                "Price",
                "--family",
                "gru",
                "--horizon",
                "5",
            ],
            "error: {csv}: column 'Price' not found; the file has columns: Date, Open, High",
        ),
        (
            [
                "--dataset",
                "load/etth1",
                "--family",
                "gru",
                "--horizon",
                "5",
                "--tracking-uri",
                "http://127.0.0.1:{port}",
            ],
            "error: tracking server http://127.0.0.1:{port} is unreachable (",
        ),
    ],
    ids=["unknown-dataset", "bad-family", "horizon-0", "missing-column", "unreachable-server"],
)
def test_bad_input_exits_2_with_one_line(
    runner: CliRunner,
    tmp_path: Path,
    goog_csv: Path,
    args: list[str],
    message: str,
) -> None:
    port = str(_free_port())
    fill = {"csv": str(goog_csv), "port": port}
    args = [a.format(**fill) for a in args]
    if "--tracking-uri" not in args:
        args += ["--tracking-uri", f"sqlite:///{tmp_path}/never.db"]
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(message.format(**fill))
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def _forecast_cli() -> list[str]:
    """The installed console script, else the same entry point through the interpreter."""
    script = REPO / ".venv" / "bin" / "forecast"
    if script.exists():
        return [str(script)]
    code = "from training.cli import main; main()"
    return [sys.executable, "-c", code]


@pytest.mark.slow
def test_user_csv_end_to_end_in_a_subprocess(
    tmp_path_factory: pytest.TempPathFactory, goog_csv: Path
) -> None:
    uri = fresh_store(tmp_path_factory, "subprocess")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": uri}
    command = [
        *_forecast_cli(),
        "train", "--data", str(goog_csv), "--time-col", "Date", "--target-col", "Close",
        "--freq", "B", "--family", "gru", "--horizon", "5", "--name", "my-stock", "--json",
        "--epochs", "1", "--device", "cpu", "--allow-worse-than-baseline",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=tmp_path_factory.getbasetemp(), env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    out = json.loads(lines[0])
    assert out["model_name"] == "my-stock"
    assert out["version"] == 1 and out["promoted"] is True
    assert out["data"]["frequency"] == "B"
    # 300 trading days; the exchange holidays between them are filled onto the weekday grid.
    dates = pd.read_csv(goog_csv, parse_dates=["Date"])["Date"]
    assert out["data"]["rows"] == len(pd.bdate_range(dates.iloc[0], dates.iloc[-1])) > 300
    assert out["baselines"]["naive"]["mae"] > 0


def test_train_from_the_series_store(runner: CliRunner, uri: str, tmp_path: Path) -> None:
    from training.data.catalogue import load_dataset
    from training.store import SeriesStore

    url = f"sqlite:///{tmp_path}/series.db"
    table = load_dataset("load/etth1").table.tail(400)
    with SeriesStore(url) as store:
        store.upsert_series("transformer-1", frequency="h", target="OT")
        store.upsert_observations(
            "transformer-1", table["timestamp"].tolist(), table["value"].tolist()
        )
    args = ["train", "--source", "store", "--series", "transformer-1", "--database-url", url]
    args += ["--family", "esn", "--horizon", "6", "--lookback", "24", "--name", "store-model"]
    result = runner.invoke(app, [*args, "--tracking-uri", uri, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["model_name"] == "store-model" and out["data"]["rows"] == 400
    assert out["data"]["source"].startswith("store:")

    mismatch = runner.invoke(
        app, ["train", "--source", "store", "--dataset", "load/etth1", "--family", "esn",
              "--horizon", "6", "--tracking-uri", uri],
    )  # fmt: skip
    assert mismatch.exit_code == 2
    assert "--source store but the data comes from a dataset" in mismatch.stderr
