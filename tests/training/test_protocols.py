"""The ETT protocol on the real ETTh1 file: split, z-scoring, window counts, published naive MSE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data.catalogue import BUNDLED, data_dir, load_dataset
from training.errors import DataError, ExperimentError
from training.evaluation.protocols import ett_problem

ETT_CSV = data_dir() / "load" / "ETTh1.csv"


def _naive_mse(problem_values: np.ndarray, origins: np.ndarray, horizon: int) -> float:
    actual = problem_values[origins[:, None] + np.arange(horizon)]  # [W, H]
    last = problem_values[origins - 1][:, None]  # [W, 1]
    return float(np.mean((actual - last) ** 2))


def test_zscore_uses_training_rows_and_population_std() -> None:
    problem = ett_problem(ETT_CSV, 96)
    raw = pd.read_csv(ETT_CSV)["OT"].to_numpy()[:14400]
    assert problem.columns == ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
    assert problem.target_index == 6 and problem.channels == (6,)
    assert problem.values.shape == (14400, 7)
    assert problem.mean[6] == pytest.approx(raw[:8640].mean())
    assert problem.std[6] == pytest.approx(raw[:8640].std(ddof=0))
    train = problem.values[:8640]
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(train.std(axis=0, ddof=0), 1.0, rtol=1e-10)
    # the known level shift of the test period (ACCURACY.md): mean -1.34 on test rows
    assert problem.values[11520:14400, 6].mean() == pytest.approx(-1.34, abs=0.01)


@pytest.mark.parametrize(
    ("horizon", "windows", "expected_mse"), [(24, 2857, 0.0343), (96, 2785, 0.0693)]
)
def test_naive_mse_matches_the_published_numbers(
    horizon: int, windows: int, expected_mse: float
) -> None:
    problem = ett_problem(ETT_CSV, horizon)
    assert len(problem.origins) == windows
    assert (problem.origins[0], problem.origins[-1]) == (11520, 14400 - horizon)
    z = problem.values[:, problem.target_index]
    assert round(_naive_mse(z, problem.origins, horizon), 4) == expected_mse
    hist, act = problem.windows(336)
    assert hist.shape == (windows, 336) and act.shape == (windows, horizon)
    assert round(float(np.mean((act - hist[:, -1:]) ** 2)), 4) == expected_mse


def test_lookback_reaches_back_into_validation_rows() -> None:
    problem = ett_problem(ETT_CSV, 24)
    hist, _ = problem.windows(720)
    z = problem.values[:, 6]
    np.testing.assert_array_equal(hist[0], z[11520 - 720 : 11520])


def test_mode_m_stacks_every_channel_channel_major() -> None:
    problem = ett_problem(ETT_CSV, 96, mode="M")
    assert problem.channels == tuple(range(7))
    hist, act = problem.windows(96)
    assert hist.shape == (7 * 2785, 96) and act.shape == (7 * 2785, 96)
    np.testing.assert_array_equal(act[2785], problem.values[11520 : 11520 + 96, 1])
    np.testing.assert_array_equal(act[-1], problem.values[14400 - 96 :, 6])


def test_frame_and_path_give_the_same_problem() -> None:
    spec = BUNDLED["load/etth1"]
    frame = load_dataset("load/etth1", covariates=spec.covariates)
    from_frame = ett_problem(frame, 48, mode="M")
    from_path = ett_problem(ETT_CSV, 48, mode="M")
    assert from_frame.columns == from_path.columns
    np.testing.assert_allclose(from_frame.values, from_path.values, rtol=1e-12)


def test_mode_m_needs_the_covariates_on_a_frame() -> None:
    with pytest.raises(DataError, match=r"mode 'M' needs every ETT column but only \['OT'\]"):
        ett_problem(load_dataset("load/etth1"), 24, mode="M")


def test_short_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    pd.read_csv(ETT_CSV, nrows=500).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"the ETT protocol needs 14400 rows; got 500"):
        ett_problem(path, 24)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ExperimentError, match=r"mode='X': must be one of \('S', 'M'\)"):
        ett_problem(ETT_CSV, 24, mode="X")
    with pytest.raises(ExperimentError, match=r"horizon=3000: the ETT test part has 2880 rows"):
        ett_problem(ETT_CSV, 3000)
    with pytest.raises(DataError, match=r"target column 'load' not in"):
        ett_problem(ETT_CSV, 24, target="load")
    with pytest.raises(DataError, match=r"does not exist. Fix: pass the path of ETTh1.csv"):
        ett_problem(ETT_CSV.with_name("nope.csv"), 24)
