"""`family = "auto"`: every candidate a child run, the best on validation registered."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.jobs.auto import CANDIDATES, train_auto
from training.jobs.experiment import TrainSpec
from training.jobs.pipeline import train
from training.jobs.preparation import cross_fitted, evaluate_model, load_frame
from training.jobs.steps import fit_candidate
from training.registry.tracking import Tracker
from training.settings import TrainSettings

from .test_tracking import fresh_store


def _csv(path: Path, values: np.ndarray) -> Path:
    stamps = pd.date_range("2024-01-01", periods=values.size, freq="h").astype(str)
    pd.DataFrame({"time": stamps, "load": values}).to_csv(path, index=False)
    return path


def _spec(path: Path, **extra: object) -> TrainSpec:
    return TrainSpec.from_flags(
        data=str(path), time_col="time", target_col="load", horizon=6, lookback=48, epochs=1,
        device="cpu", model={"hidden_size": 8}, **extra,
    )  # fmt: skip


def test_auto_is_the_default_family() -> None:
    spec = TrainSpec.from_flags(dataset="load/etth1", horizon=6)
    assert spec.family == "auto"


def test_auto_registers_the_best_candidate_and_logs_the_rest(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(500)
    daily = 100 + 30 * np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(t.size)
    path = _csv(tmp_path_factory.mktemp("auto") / "cycle.csv", daily)
    uri = fresh_store(tmp_path_factory, "auto")
    result = train(_spec(path), uri, settings=TrainSettings())
    rows = {r["family"]: r for r in result.candidates}
    assert set(rows) == set(CANDIDATES)
    trained = {f: r for f, r in rows.items() if r["status"] == "trained"}
    floor = min(trained[f]["val_mae"] for f in ("naive", "seasonal_naive", "kalman"))
    eligible = {
        f: r
        for f, r in trained.items()
        if f in ("naive", "seasonal_naive", "kalman") or r["val_mae"] <= floor * 0.99
    }
    best = min(eligible, key=lambda f: eligible[f]["val_mae"])
    assert result.family == best and rows[best]["chosen"]
    assert sum(r["chosen"] for r in rows.values()) == 1
    tracker = Tracker(uri, TrainSettings())
    version = tracker.version("cycle", result.version)
    assert version.tags["family"] == best and version.run_id == result.run_id
    assert result.metrics["val_mae"] == pytest.approx(trained[best]["val_mae"])
    children = [r for r in tracker.runs("cycle") if r.tags.get("auto") == "candidate"]
    assert sorted(c.tags["family"] for c in children) == sorted(trained)
    assert all(c.tags["mlflow.parentRunId"] == result.run_id for c in children)
    assert all("val_mae" in c.metrics and "test_mae" in c.metrics for c in children)
    parent = tracker.run_data(result.run_id)
    assert parent.tags["auto_choice"] == best


def test_a_random_walk_nobody_beats_is_the_champion(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    walk = 100 + np.cumsum(np.random.default_rng(1).standard_normal(400))
    path = _csv(tmp_path_factory.mktemp("walk") / "walk.csv", walk)
    uri = fresh_store(tmp_path_factory, "walk")
    result = train_auto(
        _spec(path), uri, settings=TrainSettings(), families=("naive", "seasonal_naive", "gru")
    )
    assert result.family == "naive" and result.promoted
    assert "nothing beat the random walk" in result.data["auto_note"]
    assert Tracker(uri, TrainSettings()).aliases("walk")["champion"] == result.version


@pytest.mark.parametrize(("family", "cross"), [("gru", True), ("esn", True), ("kalman", False)])
def test_validation_scores_are_cross_fitted_where_the_fit_chose_on_them(
    tmp_path: Path, family: str, cross: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The gate and `auto` score a learned family on its cross-fitted validation forecasts
    (each half forecast by the model the other half chose), not on the kept model's."""
    rng = np.random.default_rng(1)
    t = np.arange(600)
    values = 100 + 30 * np.sin(2 * np.pi * t / 24) + np.cumsum(rng.standard_normal(t.size))
    spec = dataclasses.replace(_spec(_csv(tmp_path / "walk.csv", values)), epochs=4)
    cand = fit_candidate(spec, load_frame(spec), family)
    assert cand.val_eval.cross_fitted is cross
    kept = evaluate_model(cand.model, cand.val_windows, spec.levels)
    if not cross:
        assert cand.report.val_forecasts is None
        np.testing.assert_array_equal(cand.val_eval.mean, kept.mean)
        return
    forecasts = cand.report.val_forecasts
    assert forecasts is not None and forecasts.shape == cand.val_windows.actual.shape
    np.testing.assert_allclose(cand.report.val_actual, cand.val_windows.actual, rtol=1e-6)
    mae = float(np.mean(np.abs(forecasts - cand.val_windows.actual)))
    assert cand.val_score("mae") == pytest.approx(mae, rel=1e-5)
    # forecasts of other windows (other values) are not scored: the kept model's are, said
    shifted = dataclasses.replace(cand.report, val_actual=cand.report.val_actual + 1.0)
    with caplog.at_level(logging.WARNING, logger="training.jobs.preparation"):
        assert cross_fitted(kept, shifted, cand.val_windows) is kept
    assert "do not match the" in caplog.text
    # the intervals keep the kept model's half-widths, around the cross-fitted forecasts
    np.testing.assert_allclose(
        cand.val_eval.upper[80] - cand.val_eval.mean, kept.upper[80] - kept.mean, rtol=1e-4,
        atol=1e-3,
    )  # fmt: skip
