"""The champion gate and manual promotion on a real MLflow registry (SQLite in tmp_path)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import io as models_io
from models.base import SeriesData
from models.config import ESNConfig
from training.errors import DataError, ExperimentError, TrackingError
from training.evaluation.splits import window_stack
from training.registry.gate import ChampionScorer, decide, promote_by_hand, run_gate
from training.registry.tracking import Tracker, model_signature
from training.settings import TrainSettings

from .test_tracking import fresh_store

LOOKBACK, HORIZON = 24, 6


def _values(n: int = 240) -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(n)
    return (5 + np.sin(2 * np.pi * t / 24) + 0.05 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Tracker:
    return Tracker(fresh_store(tmp_path_factory, "registry"), TrainSettings())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = ESNConfig(
        lookback=LOOKBACK, max_horizon=HORIZON, reservoir_size=20, washout=24, device="cpu"
    )
    model = models_io.create(config)
    y = _values()
    model.fit([SeriesData(y[:180])], [SeriesData(y[180 - LOOKBACK : 210])])
    directory = tmp_path_factory.mktemp("esn") / "forecaster"
    models_io.save(model, directory)
    return directory


def score_on(values: np.ndarray) -> ChampionScorer:
    """A real scorer: load the forecaster, MAE over every window of `values` after row 180."""

    def score(directory: Path) -> float:
        model = models_io.load(directory)
        lookback = model.meta.lookback
        origins = np.arange(180, len(values) - HORIZON + 1)
        history, actual = window_stack(values, origins, lookback, HORIZON)  # [N, L], [N, H]
        mean = model.predict(history, HORIZON).mean  # [N, H]
        return float(np.abs(mean - actual).mean())

    return score


def register(tracker: Tracker, name: str, directory: Path) -> tuple[int, str]:
    y = _values()
    example = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=LOOKBACK, freq="h"),
            "value": y[-LOOKBACK:].astype(float),
        }
    )
    with tracker.run(name, "gate-test") as run:
        version = run.log_model(
            directory,
            registered_name=name,
            signature=model_signature(HORIZON, (80, 95)),
            input_example=example,
            horizon=HORIZON,
        )
    return version, run.run_id


@pytest.mark.parametrize(
    ("challenger", "champion", "promote", "reason"),
    [
        (1.0, None, True, "no champion yet"),
        (0.98, 1.0, True, "challenger 0.98 <= champion 1 x (1 - 0.01) = 0.99"),
        (0.995, 1.0, False, "challenger 0.995 > champion 1 x (1 - 0.01) = 0.99"),
        (1.0, 1.0, False, "challenger 1 > champion 1"),
        (math.nan, 1.0, False, "challenger score nan is not finite"),
        (1.0, math.inf, True, "champion score inf is not finite"),
    ],
)
def test_decide(challenger: float, champion: float | None, promote: bool, reason: str) -> None:
    got, why = decide(challenger, champion, 0.01)
    assert got is promote
    assert why.startswith(reason)


def test_first_version_becomes_champion_and_is_tagged(tracker: Tracker, model_dir: Path) -> None:
    version, run_id = register(tracker, "gate-first", model_dir)
    decision = run_gate(
        tracker,
        "gate-first",
        version,
        0.5,
        metric="mae",
        margin=0.01,
        score_champion=score_on(_values()),
        run_id=run_id,
    )
    assert decision.promoted
    assert decision.reason == "no champion yet"
    assert tracker.aliases("gate-first") == {"champion": 1, "challenger": 1}
    tags = tracker.version("gate-first", 1).tags
    assert tags["gate_decision"] == "promoted"
    assert tags["val_score"] == "0.5"
    assert tags["gate_metric"] == "val_mae"
    assert tracker.run_data(run_id).tags["gate_decision"] == "promoted"


def test_worse_challenger_is_rejected_better_one_promoted(
    tracker: Tracker, model_dir: Path
) -> None:
    name = "gate-compete"
    scorer = score_on(_values())
    v1, _ = register(tracker, name, model_dir)
    run_gate(tracker, name, v1, 1.0, metric="mae", margin=0.01, score_champion=scorer)
    champion_now = scorer(model_dir)  # the champion's real score on these windows

    v2, run2 = register(tracker, name, model_dir)
    worse = run_gate(
        tracker, name, v2, champion_now * 1.5, metric="mae", margin=0.01,
        score_champion=scorer, run_id=run2,
    )  # fmt: skip
    assert not worse.promoted
    assert worse.champion_score == pytest.approx(champion_now, rel=1e-9)
    assert worse.previous_champion == 1 and worse.champion_version == 1
    assert "(champion v1 re-evaluated)" in worse.reason
    assert tracker.aliases(name) == {"champion": 1, "challenger": 2}
    tags = tracker.version(name, 2).tags
    assert tags["gate_decision"] == "rejected"
    assert tags["champion_score"] == f"{champion_now:.6g}"
    assert tags["champion_version_at_gate"] == "1"
    assert tracker.run_data(run2).tags["gate_decision"] == "rejected"

    v3, _ = register(tracker, name, model_dir)
    better = run_gate(
        tracker, name, v3, champion_now * 0.5, metric="mae", margin=0.01, score_champion=scorer
    )
    assert better.promoted
    assert tracker.aliases(name) == {"champion": 3, "challenger": 3}


def test_champion_that_cannot_be_rescored_falls_back_to_its_recorded_score(
    tracker: Tracker, model_dir: Path
) -> None:
    name = "gate-short"
    v1, _ = register(tracker, name, model_dir)
    run_gate(
        tracker, name, v1, 0.25, metric="mae", margin=0.01, score_champion=score_on(_values()),
        kept_score=0.2,
    )  # fmt: skip  # the kept model's score is what a re-scored champion would be compared on

    def too_short(directory: Path) -> float:
        """New data with only 10 rows before the first origin: less than the look-back."""
        model = models_io.load(directory)
        window_stack(_values()[:20], np.array([10]), model.meta.lookback, HORIZON)
        return 0.0

    with pytest.raises(DataError):
        too_short(model_dir)
    v2, _ = register(tracker, name, model_dir)
    decision = run_gate(tracker, name, v2, 0.3, metric="mae", margin=0.01, score_champion=too_short)
    assert not decision.promoted
    assert decision.champion_score == pytest.approx(0.2)
    assert "champion v1 not re-evaluated (window_stack:" in decision.reason
    assert decision.reason.endswith("recorded score used)")


def test_promote_by_hand_records_who_and_why(tracker: Tracker, model_dir: Path) -> None:
    name = "gate-manual"
    v1, _ = register(tracker, name, model_dir)
    run_gate(
        tracker, name, v1, 0.25, metric="mae", margin=0.01, score_champion=score_on(_values()),
        kept_score=0.2,
    )  # fmt: skip  # the kept model's score is what a re-scored champion would be compared on
    v2, run2 = register(tracker, name, model_dir)
    done = promote_by_hand(tracker, name, v2, reason="rollback drill", user="alice")
    assert (done.version, done.previous_champion, done.user) == (2, 1, "alice")
    assert tracker.aliases(name)["champion"] == 2
    tags = tracker.version(name, 2).tags
    assert tags["gate_decision"] == "manual"
    assert tags["promoted_by"] == "alice"
    assert tags["promoted_reason"] == "rollback drill"
    assert tracker.run_data(run2).tags["manual_promotion_v2"] == "alice: rollback drill"


def test_promote_by_hand_rejects_bad_input(tracker: Tracker, model_dir: Path) -> None:
    name = "gate-bad"
    register(tracker, name, model_dir)
    with pytest.raises(ExperimentError, match=r"--reason is empty\. Fix: say why"):
        promote_by_hand(tracker, name, 1, reason="  ", user="bob")
    with pytest.raises(TrackingError) as info:
        promote_by_hand(tracker, name, 7, reason="x", user="bob")
    assert str(info.value) == (
        "registered model 'gate-bad' has no version 7 (versions: [1]). "
        "Fix: pick one listed by `forecast compare gate-bad`"
    )
    assert tracker.aliases(name) == {}
