"""The gate knows the baselines: a challenger must beat naive / seasonal naive, first one too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app
from training.registry.gate import run_gate
from training.registry.tracking import Tracker
from training.settings import TrainSettings

from .test_promotion import model_dir, register  # noqa: F401  (fixture re-used)
from .test_tracking import fresh_store

FLOOR = {"naive": 2.0, "seasonal_naive": 0.5}


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Tracker:
    return Tracker(fresh_store(tmp_path_factory, "gate-baselines"), TrainSettings())


def _never(directory: Path) -> float:
    raise AssertionError("no champion should be scored")


def test_first_model_worse_than_seasonal_naive_is_rejected(
    tracker: Tracker,
    model_dir: Path,  # noqa: F811
) -> None:
    version, run_id = register(tracker, "floor-a", model_dir)
    decision = run_gate(
        tracker, "floor-a", version, 1.0, metric="mae", margin=0.01, score_champion=_never,
        run_id=run_id, baseline_scores=FLOOR,
    )  # fmt: skip
    assert not decision.promoted
    assert decision.decision == "rejected: worse than seasonal naive"
    assert decision.reason.startswith("worse than seasonal naive: challenger 1 > seasonal naive")
    assert "champion" not in tracker.aliases("floor-a")
    tags = tracker.version("floor-a", version).tags
    assert tags["gate_decision"] == "rejected: worse than seasonal naive"
    assert tags["val_score"] == "1" and tags["baseline_score"] == "0.5"
    assert tags["baseline_name"] == "seasonal_naive"
    assert tracker.run_data(run_id).tags["baseline_score"] == "0.5"


def test_the_override_promotes_and_records_it(tracker: Tracker, model_dir: Path) -> None:  # noqa: F811
    version, _ = register(tracker, "floor-b", model_dir)
    decision = run_gate(
        tracker, "floor-b", version, 1.0, metric="mae", margin=0.01, score_champion=_never,
        baseline_scores=FLOOR, allow_worse_than_baseline=True,
    )  # fmt: skip
    assert decision.promoted and decision.worse_than_baseline
    assert tracker.aliases("floor-b")["champion"] == version
    assert "allowed by --allow-worse-than-baseline" in decision.reason


def test_beating_the_baseline_by_the_margin_is_needed(tracker: Tracker, model_dir: Path) -> None:  # noqa: F811
    version, _ = register(tracker, "floor-c", model_dir)
    close = run_gate(
        tracker, "floor-c", version, 0.499, metric="mae", margin=0.01, score_champion=_never,
        baseline_scores=FLOOR,
    )  # fmt: skip
    assert not close.promoted  # 0.499 > 0.5 x 0.99
    version, _ = register(tracker, "floor-c", model_dir)
    better = run_gate(
        tracker, "floor-c", version, 0.4, metric="mae", margin=0.01, score_champion=_never,
        baseline_scores=FLOOR,
    )  # fmt: skip
    assert better.promoted and better.decision == "promoted"


def test_the_random_walk_itself_is_not_held_to_the_floor(
    tracker: Tracker,
    model_dir: Path,  # noqa: F811
) -> None:
    version, _ = register(tracker, "floor-d", model_dir)
    decision = run_gate(
        tracker, "floor-d", version, 2.0, metric="mae", margin=0.01, score_champion=_never,
        baseline_scores={"naive": 2.0}, family="naive",
    )  # fmt: skip
    assert decision.promoted


def test_the_cross_fitted_score_meets_the_floor_and_the_kept_one_the_champion(
    tracker: Tracker,
    model_dir: Path,  # noqa: F811
) -> None:
    """Against the baselines the challenger's cross-fitted score counts; against the champion,
    which can only be re-scored as the model it is, its kept model's score does."""
    first, _ = register(tracker, "floor-e", model_dir)
    assert run_gate(
        tracker, "floor-e", first, 0.4, metric="mae", margin=0.01, score_champion=_never,
        baseline_scores=FLOOR, kept_score=0.3,
    ).promoted  # fmt: skip
    assert tracker.version("floor-e", first).tags["val_score_kept"] == "0.3"
    version, _ = register(tracker, "floor-e", model_dir)
    # kept 0.25 beats the champion's 0.3; cross-fitted 0.45 still beats seasonal naive's 0.5
    decision = run_gate(
        tracker, "floor-e", version, 0.45, metric="mae", margin=0.01,
        score_champion=lambda directory: 0.3, baseline_scores=FLOOR, kept_score=0.25,
    )  # fmt: skip
    assert decision.promoted and "challenger 0.25 <= champion 0.3" in decision.reason
    version, _ = register(tracker, "floor-e", model_dir)
    # kept 0.2 would beat the champion, but cross-fitted 0.6 loses to seasonal naive
    decision = run_gate(
        tracker, "floor-e", version, 0.6, metric="mae", margin=0.01,
        score_champion=lambda directory: 0.25, baseline_scores=FLOOR, kept_score=0.2,
    )  # fmt: skip
    assert decision.decision == "rejected: worse than seasonal naive"
    tags = tracker.version("floor-e", version).tags
    assert tags["val_score"] == "0.6" and tags["val_score_kept"] == "0.2"


@pytest.fixture(scope="module")
def daily_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pure daily cycle: seasonal naive is nearly perfect, a 1-epoch GRU is not."""
    rng = np.random.default_rng(0)
    t = np.arange(600)
    frame = pd.DataFrame(
        {
            "time": pd.date_range("2024-01-01", periods=t.size, freq="h").astype(str),
            "load": 100 + 30 * np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(t.size),
        }
    )
    path = tmp_path_factory.mktemp("floor") / "daily.csv"
    frame.to_csv(path, index=False)
    return path


def test_cli_says_rejected_and_the_flag_overrides(
    tmp_path_factory: pytest.TempPathFactory, daily_csv: Path
) -> None:
    uri = fresh_store(tmp_path_factory, "gate-cli")
    args = [
        "train", "--data", str(daily_csv), "--time-col", "time", "--target-col", "load",
        "--family", "gru", "--horizon", "6", "--lookback", "48", "--epochs", "1",
        "--device", "cpu", "--tracking-uri", uri,
    ]  # fmt: skip
    runner = CliRunner()
    worse = runner.invoke(app, args)
    assert worse.exit_code == 0, worse.output
    assert "rejected: worse than seasonal naive" in worse.output
    assert "--allow-worse-than-baseline to override" in worse.output
    assert "champion" not in Tracker(uri, TrainSettings()).aliases("daily")
    allowed = runner.invoke(app, [*args, "--allow-worse-than-baseline"])
    assert allowed.exit_code == 0, allowed.output
    assert "promoted to champion" in allowed.output
    assert Tracker(uri, TrainSettings()).aliases("daily")["champion"] == 2
