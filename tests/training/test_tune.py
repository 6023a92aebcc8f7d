"""`forecast tune`: a real search on a real 2-node Ray cluster, logged to a real MLflow store;
the [tune] table and the one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app
from training.errors import ExperimentError
from training.jobs.experiment import TrainSpec
from training.jobs.search_space import parse_dimension, read_settings, read_spec, trial_spec
from training.registry.tracking import Tracker
from training.settings import TrainSettings

from .test_tracking import fresh_store

REPO = Path(__file__).resolve().parents[2]

EXPERIMENT = """\
name = "tiny-panel"
family = "esn"
horizon = 6

[data]
file = "panel.csv"
time_col = "time"
target_col = "load"
id_col = "meter"

[tune]
trials = 7             # the CLI's --trials 3 wins
grace_period = 1
seed = 1

[tune.space.esn]
lookback = 24
reservoir_size = [16, 24]
ridge = { loguniform = [1e-4, 1.0] }

[model]
device = "cpu"
"""


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two hourly meters with a daily cycle (300 hours each), and the experiment file."""
    root = tmp_path_factory.mktemp("tune")
    rng = np.random.default_rng(5)
    t = np.arange(300)
    parts = [
        pd.DataFrame(
            {
                "meter": name,
                "time": pd.date_range("2024-01-01", periods=t.size, freq="h").astype(str),
                "load": level + 5 * np.sin(2 * np.pi * t / 24) + rng.standard_normal(t.size),
            }
        )
        for name, level in (("m1", 20.0), ("m2", 40.0))
    ]
    pd.concat(parts).to_csv(root / "panel.csv", index=False)
    path = root / "tiny.toml"
    path.write_text(EXPERIMENT)
    return path


def _forecast(*args: str, timeout: float = 540) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "training.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_tune_on_a_two_node_cluster_logs_children_registers_and_gates_the_best(
    ray_cluster: str, experiment: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    uri = fresh_store(tmp_path_factory, "tune")
    done = _forecast("tune", "--config", str(experiment), "--trials", "3",
                     "--ray-address", ray_cluster, "--tracking-uri", uri, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["cluster"]["nodes"] == 2
    trials = out["trials"]
    assert len(trials) == 3
    # Both nodes ran trials (two 1-CPU trials at once can only fit on two nodes).
    assert len({t["node_id"] for t in trials}) == 2
    assert all(t["params"]["lookback"] == 24 for t in trials)
    assert all(t["params"]["reservoir_size"] in (16, 24) for t in trials)

    tracker = Tracker(uri, TrainSettings())
    runs = tracker.runs("tiny-panel")
    parent = next(r for r in runs if r.tags.get("tune_role") == "parent")
    assert parent.run_id == out["parent_run_id"] and parent.status == "FINISHED"
    assert parent.params["trials"] == "3" and parent.params["searcher"] == "optuna-tpe"
    children = [r for r in runs if r.tags.get("mlflow.parentRunId") == parent.run_id]
    trial_runs = [r for r in children if r.tags.get("tune_role") == "trial"]
    assert len(trial_runs) == 3  # logged once each, from the driver
    assert {r.tags["ray_node_id"] for r in trial_runs} == {t["node_id"] for t in trials}
    for run in trial_runs:
        assert run.params["lookback"] == "24"
        assert tracker.metric_history(run.run_id, "val_loss")  # per-epoch history
    finished = [r for r in trial_runs if r.tags["tune_status"] == "completed"]
    assert finished and all("val_mae" in r.metrics for r in finished)

    best = next(r for r in children if r.tags.get("tune_role") == "best")
    best_trial = next(t for t in trials if t["trial_id"] == out["best_trial"])
    assert best_trial["score"] == min(t["score"] for t in trials if t["status"] == "completed")
    # The retrained best reproduces the trial's validation score and went through the gate.
    assert best.metrics["val_mae"] == pytest.approx(best_trial["score"], rel=1e-5)
    assert best.params["reservoir_size"] == str(best_trial["params"]["reservoir_size"])
    version = tracker.version("tiny-panel", out["train"]["version"])
    assert version.run_id == best.run_id
    assert version.tags["gate_decision"] == "promoted"
    assert tracker.aliases("tiny-panel")["champion"] == version.version


def test_tune_table_is_read_and_the_spec_still_parses(experiment: Path) -> None:
    settings = read_settings(experiment)
    assert (settings.trials, settings.seed) == (7, 1)
    assert settings.spaces["esn"]["reservoir_size"].values == (16, 24)
    spec = read_spec(experiment)
    assert spec.data == str(experiment.parent / "panel.csv")
    assert spec.source_file == str(experiment)


def test_an_inline_tune_table_parses_and_errors_name_the_real_file(experiment: Path) -> None:
    inline = experiment.parent / "inline.toml"
    inline.write_text(
        "tune = { trials = 2, space = { esn = { reservoir_size = [8, 16] } } }\n"
        + EXPERIMENT.split("[tune]")[0]
    )
    assert read_settings(inline).trials == 2
    assert read_spec(inline).data == str(experiment.parent / "panel.csv")
    bad = experiment.parent / "bad.toml"
    bad.write_text(EXPERIMENT.replace("horizon = 6", "horizon = 6\nwindow = 3"))
    with pytest.raises(ExperimentError) as caught:
        read_spec(bad)
    assert str(caught.value).startswith(f"{bad}: window: unknown key")  # the file, not a copy


def test_trial_values_are_made_consistent() -> None:
    spec = TrainSpec(family="gru", horizon=6, dataset="load/etth1", model={"hidden_size": 8})
    out = trial_spec(spec, {"lookback": 36, "segment_length": 24, "lr": 1e-3})
    assert out.lookback == 36 and out.model["segment_length"] == 18  # largest divisor <= 24
    assert out.model["hidden_size"] == 8 and out.model["lr"] == 1e-3
    esn = TrainSpec(family="esn", horizon=6, dataset="load/etth1", model={"washout": 96})
    assert trial_spec(esn, {"lookback": 24, "ridge": 0.5}).model == {"washout": 24, "ridge": [0.5]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"uniform": [0.5, 0.5]}, "x = { uniform = [0.5, 0.5] }: an empty range (low < high)"),
        ({"loguniform": [0.0, 1.0]}, "an empty range (low < high and low > 0)"),
        ({"randint": [3, 1]}, "x = { randint = [3, 1] }: an empty range (low <= high)"),
        ([], "x = []: an empty choice"),
        ({"normal": [0, 1]}, "expected one of { uniform = [low, high] }"),
    ],
)
def test_bad_dimensions_are_refused(value: object, message: str) -> None:
    with pytest.raises(ExperimentError) as info:
        parse_dimension("x", value)
    assert message in str(info.value)


def _write(tmp_path: Path, experiment: Path, extra: str) -> Path:
    path = tmp_path / "bad.toml"
    text = experiment.read_text().replace(
        'file = "panel.csv"', f'file = "{experiment.parent / "panel.csv"}"'
    )
    path.write_text(text + extra)
    return path


@pytest.mark.parametrize(
    ("extra", "args", "message"),
    [
        (
            "[tune.space.grux]\nhidden_size = [8]\n",
            [],
            "[tune.space.grux]: unknown family 'grux'. Fix: use one of lstm, gru, rnn, esn",
        ),
        (
            "[tune.space.gru]\nlr = { uniform = [0.01, 0.001] }\n",
            [],
            "[tune.space.gru] lr = { uniform = [0.01, 0.001] }: an empty range (low < high)",
        ),
        (
            "[tune.space.gru]\nhidden_sise = [8]\n",
            [],
            "[tune.space.gru] hidden_sise: not a searchable gru key",
        ),
        ("", ["--trials", "0"], "--trials 0: must be >= 1. Fix: e.g. --trials 20"),
        ("", ["--time-budget", "0"], "--time-budget 0.0: must be > 0 minutes"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, experiment: Path, extra: str, args: list[str], message: str
) -> None:
    config = _write(tmp_path, experiment, extra)
    result = CliRunner().invoke(app, ["tune", "--config", str(config), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_an_unreachable_ray_address_fails_within_seconds(
    tmp_path: Path, experiment: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = fresh_store(tmp_path_factory, "unreachable")
    started = time.monotonic()
    result = CliRunner().invoke(app, ["tune", "--config", str(_write(tmp_path, experiment, "")),
                                      "--ray-address", f"127.0.0.1:{port}",
                                      "--tracking-uri", uri])  # fmt: skip
    assert time.monotonic() - started < 20
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: --ray-address '127.0.0.1:{port}': no Ray head")
    assert result.stderr.count("\n") == 1
    assert Tracker(uri, TrainSettings()).runs("tiny-panel") == []  # nothing was logged


@pytest.mark.slow
def test_a_recurrent_search_reports_every_epoch(
    ray_cluster: str, experiment: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from training.jobs.search_space import Dimension, TuneSettings
    from training.jobs.tune import tune

    uri = fresh_store(tmp_path_factory, "tune-gru")
    spec = read_spec(experiment, family="gru", epochs=2)
    fixed = {"lookback": 24, "segment_length": 12, "num_layers": 1, "hidden_size": 8}
    space = {k: Dimension("fixed", (v,)) for k, v in fixed.items()}
    settings = TuneSettings(trials=2, grace_period=5, spaces={"gru": space})  # no ASHA rung
    seen: list[str] = []
    result = tune(spec, settings, ray_address=ray_cluster, tracking_uri=uri,
                  on_update=lambda u: seen.append(u.status))  # fmt: skip
    assert [t.status for t in result.trials] == ["completed", "completed"]
    assert seen.count("completed") == 2 and "running" in seen
    tracker = Tracker(uri, TrainSettings())
    for trial in result.trials:
        assert [row["epoch"] for row in trial.history] == [1.0, 2.0]
        assert len(tracker.metric_history(trial.run_id, "epoch_val_mae")) == 2
        run = tracker.run_data(trial.run_id)
        assert run.params["hidden_size"] == "8" and run.params["segment_length"] == "12"
    assert result.best_spec.model["lr"] == result.best.params["lr"]
    assert tracker.run_data(result.train.run_id).params["lr"] == str(result.best.params["lr"])
