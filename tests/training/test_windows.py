"""Evaluation windows: one builder per protocol, the MASE season from the data's frequency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.data.frame import SeriesFrame
from training.errors import ExperimentError
from training.evaluation import splits
from training.evaluation.metrics import seasonal_naive_scale
from training.evaluation.protocols import ett_problem
from training.evaluation.windows import ett_windows


def _ett_like(freq: str) -> SeriesFrame:
    """14400 rows of an OT-like target with one load covariate, at `freq`."""
    rng = np.random.default_rng(0)
    n = splits.ETT_SPLIT.end
    t = np.arange(n)
    table = pd.DataFrame(
        {
            "series_id": "ett",
            "timestamp": pd.date_range("1980-01-01", periods=n, freq=freq).as_unit("ns"),
            "value": np.sin(2 * np.pi * t / 7) + rng.normal(scale=0.1, size=n),
            "HUFL": rng.normal(size=n),
        }
    )
    return SeriesFrame(table, frequency=freq, target="OT", covariates=("HUFL",), source="ett")


def test_ett_mase_scale_takes_the_season_of_the_frequency() -> None:
    problem = ett_problem(_ett_like("D"), 12)
    windows = ett_windows(problem, 48)
    train = problem.train_values[:, 0]  # [8640]
    # daily data: a weekly season of 7, not the hourly 24
    assert windows.mase_scale[0] == pytest.approx(seasonal_naive_scale(train, 7))
    assert windows.mase_scale[0] != pytest.approx(seasonal_naive_scale(train, 24))


def test_ett_val_windows_carry_stamps_and_covariates() -> None:
    frame = _ett_like("h")
    problem = ett_problem(frame, 24)
    val = ett_windows(problem, 96, part="val", covariates=("HUFL",))
    origins = splits.val_origins(problem.split, 24)
    assert len(val) == len(origins) and val.history.shape == (len(origins), 96)
    assert val.covariates is not None and val.covariates.shape == (len(origins), 96, 1)
    assert val.timestamps is not None
    first = int(origins[0])
    assert val.timestamps[0, -1] == frame.table["timestamp"].to_numpy()[first - 1]
    np.testing.assert_allclose(val.actual[0], problem.values[first : first + 24, 1])
    np.testing.assert_allclose(val.covariates[0, :, 0], problem.values[first - 96 : first, 0])


def test_ett_covariates_need_mode_s() -> None:
    problem = ett_problem(_ett_like("h"), 24, mode="M")
    with pytest.raises(ExperimentError, match=r"mode 'M' already evaluates every column"):
        ett_windows(problem, 96, covariates=("HUFL",))
    with pytest.raises(ExperimentError, match=r"part='train': must be 'val' or 'test'"):
        ett_windows(problem, 96, part="train")
