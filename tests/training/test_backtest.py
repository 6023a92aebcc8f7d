"""Backtests: chunked evaluate_forecaster, run_baselines JSON on ETT and panels, windows."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from models.base import Forecast
from training.data.catalogue import load_dataset
from training.data.frame import SeriesFrame
from training.errors import DataError, ExperimentError
from training.evaluation import splits
from training.evaluation.backtest import evaluate_forecaster, run_baselines
from training.evaluation.baselines import naive
from training.evaluation.protocols import ett_problem
from training.evaluation.windows import Windows, ett_windows, frame_windows


def _panel(lengths: Sequence[int], freq: str = "h", seed: int = 0) -> SeriesFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for k, n in enumerate(lengths):
        t = np.arange(n)
        value = 10 + 3 * np.sin(2 * np.pi * t / 24) + np.cumsum(rng.normal(scale=0.3, size=n))
        parts.append(
            pd.DataFrame(
                {
                    "series_id": f"s{k:02d}",
                    "timestamp": pd.date_range("2024-01-01", periods=n, freq=freq).as_unit("ns"),
                    "value": value,
                    "temp": rng.normal(size=n),
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    return SeriesFrame(table, frequency=freq, target="y", covariates=("temp",), source="panel")


def _naive_with_band(
    history: np.ndarray,
    horizon: int,
    levels: Sequence[int],
    *,
    timestamps: np.ndarray | None = None,
    covariates: np.ndarray | None = None,
) -> Forecast:
    mean = naive(history, horizon)
    return Forecast(mean, {lv: mean - 0.1 for lv in levels}, {lv: mean + 0.1 for lv in levels})


def test_evaluate_forecaster_is_independent_of_chunk_size() -> None:
    y = np.cumsum(np.random.default_rng(1).normal(size=300))
    hist, act = splits.window_stack(y, np.arange(50, 290), 20, 6)
    windows = Windows(history=hist, actual=act, mase_scale=1.5)
    whole = evaluate_forecaster(_naive_with_band, windows, levels=(80,))
    chunked = evaluate_forecaster(_naive_with_band, windows, levels=(80,), chunk_size=7)
    assert whole.windows == len(windows) == 240
    assert whole.overall == pytest.approx(chunked.overall)
    assert whole.overall["mse"] == pytest.approx(np.mean((act - hist[:, -1:]) ** 2))
    assert whole.overall["width_80"] == pytest.approx(0.2)


def test_run_baselines_ett_protocol_reports_the_published_naive_mse() -> None:
    frame = load_dataset("load/etth1")
    out = run_baselines(frame, 96, "ett", dataset="load/etth1")
    json.dumps(out)  # JSON-able as the CLI prints it
    assert (out["dataset"], out["horizon"], out["protocol"]) == ("load/etth1", 96, "ett")
    assert out["windows"] == 2785 and out["mode"] == "S"
    assert set(out["baselines"]) == {"naive", "seasonal_naive", "kalman"}
    naive_scores = out["baselines"]["naive"]
    assert round(naive_scores["mse"], 4) == 0.0693
    assert out["baselines"]["seasonal_naive"]["season"] == 24
    for scores in out["baselines"].values():
        assert {"mse", "mae", "mase", "coverage_80", "coverage_95", "width_95"} <= set(scores)
        assert 0.5 < scores["coverage_80"] <= 1.0
    kalman = out["baselines"]["kalman"]
    # ETT's OT is close to a random walk: the filter's level is close to the last value
    assert kalman["mse"] == pytest.approx(naive_scores["mse"], rel=0.02)
    assert kalman["sigma2_eta"] > kalman["sigma2_eps"]


def test_run_baselines_pools_every_series_of_a_panel() -> None:
    frame = _panel([200, 260, 230])
    out = run_baselines(frame, 12, per_step=True)
    expected = sum(
        len(splits.test_origins(splits.ratio_split(n, horizon=12), 12)) for n in (200, 260, 230)
    )
    assert out["windows"] == expected and out["series"] == 3
    assert out["notes"] == []
    seasonal = out["baselines"]["seasonal_naive"]
    assert seasonal["season"] == 24
    assert len(seasonal["per_step"]["mae"]) == 12
    # a daily sine: repeating yesterday beats repeating the last hour
    assert seasonal["mae"] < out["baselines"]["naive"]["mae"]


def test_panel_baselines_agree_with_frame_windows() -> None:
    frame = _panel([120] * 9, seed=3)
    out = run_baselines(frame, 6)
    windows = frame_windows(frame, 6, lookback=48)
    assert out["windows"] == len(windows) == 9 * (24 - 6 + 1)
    scores = evaluate_forecaster(_naive_with_band, windows, levels=(80, 95))
    assert scores.overall["mse"] == pytest.approx(out["baselines"]["naive"]["mse"])
    assert scores.overall["mase"] == pytest.approx(out["baselines"]["naive"]["mase"])
    assert windows.timestamps is not None and windows.timestamps.shape == (len(windows), 48)
    assert windows.covariates is not None and windows.covariates.shape == (len(windows), 48, 1)


def test_short_series_fall_back_to_season_one_with_a_note() -> None:
    frame = _panel([40, 44], freq="D")  # season 7 needs more than 8 training rows at H=5
    out = run_baselines(frame, 5)
    assert out["baselines"]["seasonal_naive"]["season"] == 7
    short = _panel([22, 24], freq="W")  # season 52 cannot fit
    out = run_baselines(short, 2)
    assert out["baselines"]["seasonal_naive"]["season"] == 1
    assert out["notes"][0].startswith("season 52 needs more than 53 training rows")


def test_ett_windows_scale_mase_by_the_training_seasonal_naive() -> None:
    problem = ett_problem(load_dataset("load/etth1"), 24)
    windows = ett_windows(problem, 96)
    scores = evaluate_forecaster(_naive_with_band, windows, levels=(80,))
    out = run_baselines(load_dataset("load/etth1"), 24, "ett")
    assert round(scores.overall["mse"], 4) == 0.0343
    assert scores.overall["mase"] == pytest.approx(out["baselines"]["naive"]["mase"])


def test_bad_protocol_and_too_short_series_are_refused() -> None:
    with pytest.raises(ExperimentError, match=r"protocol='rolling': must be one of"):
        run_baselines(_panel([100]), 4, "rolling")
    with pytest.raises(DataError, match=r"series 's01' has 30 rows"):
        run_baselines(_panel([200, 30]), 12)
    with pytest.raises(DataError, match=r"lookback=500 but its first test window starts at row"):
        frame_windows(_panel([200]), 12, lookback=500)
