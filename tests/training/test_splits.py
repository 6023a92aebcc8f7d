"""Time splits: exact ETT boundaries, ratio splits with minimum sizes, rolling origins, windows."""

from __future__ import annotations

import numpy as np
import pytest

from training.errors import DataError, ExperimentError
from training.evaluation import splits
from training.evaluation.splits import ETT_SPLIT, Split, ratio_split, window_stack


def test_ett_split_boundaries_are_the_standard_ones() -> None:
    assert (ETT_SPLIT.train_end, ETT_SPLIT.val_end, ETT_SPLIT.end) == (8640, 11520, 14400)
    assert (ETT_SPLIT.n_val, ETT_SPLIT.n_test) == (2880, 2880)


@pytest.mark.parametrize("horizon", [1, 24, 96, 192, 336, 720, 2880])
def test_ett_test_origins_cover_every_window(horizon: int) -> None:
    origins = splits.test_origins(ETT_SPLIT, horizon)
    assert origins.dtype == np.int64
    assert len(origins) == 2880 - horizon + 1
    assert origins[0] == 11520
    assert origins[-1] == 14400 - horizon
    assert np.all(np.diff(origins) == 1)


def test_ett_window_counts_for_the_published_horizons() -> None:
    assert len(splits.test_origins(ETT_SPLIT, 96)) == 2785
    assert len(splits.test_origins(ETT_SPLIT, 24)) == 2857


def test_last_test_target_is_the_last_test_row() -> None:
    origins = splits.test_origins(ETT_SPLIT, 96)
    assert origins[-1] + 96 - 1 == ETT_SPLIT.end - 1


def test_val_origins_stay_inside_validation() -> None:
    origins = splits.val_origins(ETT_SPLIT, 24)
    assert (origins[0], origins[-1], len(origins)) == (8640, 11520 - 24, 2880 - 24 + 1)


def test_horizon_longer_than_test_part_is_refused() -> None:
    with pytest.raises(DataError, match=r"horizon=2881: the test part has only 2880 rows"):
        splits.test_origins(ETT_SPLIT, 2881)


def test_non_positive_horizon_is_refused() -> None:
    with pytest.raises(ExperimentError, match=r"horizon=0: must be a positive integer"):
        splits.test_origins(ETT_SPLIT, 0)


def test_split_rejects_unordered_boundaries() -> None:
    with pytest.raises(DataError, match=r"Split\(train_end=10, val_end=10, end=20\)"):
        Split(10, 10, 20)


def test_ratio_split_default_fractions() -> None:
    assert ratio_split(100) == Split(70, 80, 100)


def test_ratio_split_gives_val_and_test_a_full_window() -> None:
    sp = ratio_split(100, horizon=24)
    assert sp == Split(52, 76, 100)
    assert len(splits.test_origins(sp, 24)) == 1
    assert len(splits.val_origins(sp, 24)) == 1


def test_ratio_split_too_short_series_names_the_series() -> None:
    with pytest.raises(DataError) as info:
        ratio_split(30, horizon=10, series_id="P7")
    assert str(info.value) == (
        "series 'P7' has 30 rows; a split with val_fraction=0.1, test_fraction=0.2 and "
        "horizon=10 leaves 10 training rows but needs 12 (at least about 32 rows in all). "
        "Fix: use a shorter --horizon, or drop series this short"
    )


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (0.0, 0.2, r"val_fraction=0.0: must lie in \(0, 1\)"),
        (0.1, 1.5, r"test_fraction=1.5: must lie in \(0, 1\)"),
        (0.5, 0.5, r"val_fraction \+ test_fraction = 1: must be < 1"),
    ],
)
def test_ratio_split_rejects_bad_fractions(val: float, test: float, message: str) -> None:
    with pytest.raises(ExperimentError, match=message):
        ratio_split(100, val, test)


def test_window_stack_gathers_history_and_targets() -> None:
    values = np.arange(20.0)
    hist, act = window_stack(values, np.array([5, 6, 15]), lookback=3, horizon=2)
    np.testing.assert_array_equal(hist, [[2, 3, 4], [3, 4, 5], [12, 13, 14]])
    np.testing.assert_array_equal(act, [[5, 6], [6, 7], [15, 16]])


def test_window_stack_keeps_channels_apart() -> None:
    values = np.stack([np.arange(10.0), 100 + np.arange(10.0)], axis=1)  # [T, 2]
    hist, act = window_stack(values, np.array([4]), lookback=2, horizon=3)
    assert hist.shape == (1, 2, 2) and act.shape == (1, 2, 3)
    np.testing.assert_array_equal(hist[0], [[2, 3], [102, 103]])
    np.testing.assert_array_equal(act[0], [[4, 5, 6], [104, 105, 106]])


def test_window_stack_refuses_windows_outside_the_rows() -> None:
    with pytest.raises(DataError, match=r"they must lie in \[3, 18\] for 20 rows"):
        window_stack(np.arange(20.0), np.array([2, 10]), lookback=3, horizon=2)
