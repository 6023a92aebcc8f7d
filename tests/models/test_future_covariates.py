"""Future covariates: every family takes them, the neural ones read the horizon's values.

Data: hourly series whose value follows a known-ahead covariate at the same step (a promotion
lifts demand while it runs), so a model that ignores the horizon's covariate values cannot
change its forecast when only those values change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models import io
from models.base import Forecaster, SeriesData
from models.errors import ConfigError, ForecastInputError

LOOKBACK, MAX_H, T = 24, 6, 300
SHARED: dict[str, Any] = {
    "lookback": LOOKBACK,
    "max_horizon": MAX_H,
    "frequency": "h",
    "target": "demand",
    "future_covariates": ["promo", "temp"],
    "device": "cpu",
}
TINY: dict[str, dict[str, Any]] = {
    "lstm-direct": {"family": "lstm", "hidden_size": 8, "epochs": 2, "segment_length": 4,
                    "decoder": "direct", "seed": 1},
    "gru-segments": {"family": "gru", "hidden_size": 8, "epochs": 2, "segment_length": 3,
                     "decoder": "segments", "seed": 1},
    "gru-seq2seq": {"family": "gru", "hidden_size": 8, "epochs": 2, "segment_length": 4,
                    "decoder": "seq2seq", "seed": 1},
    "rnn-direct": {"family": "rnn", "hidden_size": 8, "epochs": 2, "segment_length": 1,
                   "decoder": "direct", "seed": 1},
    "esn": {"family": "esn", "reservoir_size": 16, "washout": 12, "seed": 1},
    "naive": {"family": "naive"},
    "seasonal_naive": {"family": "seasonal_naive"},
    "kalman": {"family": "kalman"},
}  # fmt: skip
READERS = {"lstm-direct", "gru-segments", "gru-seq2seq", "rnn-direct", "esn"}


def _panel() -> list[SeriesData]:
    rng = np.random.default_rng(4)
    t = np.arange(T)
    stamps = np.datetime64("2021-03-01T00", "s") + t * np.timedelta64(1, "h")
    out = []
    for i, level in enumerate((20.0, 50.0)):
        promo = (rng.random(T) < 0.3).astype(np.float32)  # [T] 0/1
        temp = (15 + 5 * np.sin(2 * np.pi * t / 24) + rng.standard_normal(T)).astype(np.float32)
        values = level + 8 * promo + 0.3 * temp + 0.2 * rng.standard_normal(T)
        fut = np.stack([promo, temp], axis=1)  # [T, 2]
        out.append(
            SeriesData(values.astype(np.float32), stamps, None, f"s{i}", future_covariates=fut)
        )
    return out


def _cut(panel: list[SeriesData], start: int, stop: int) -> list[SeriesData]:
    return [
        SeriesData(
            s.values[start:stop],
            None if s.timestamps is None else s.timestamps[start:stop],
            None,
            s.series_id,
            future_covariates=(
                None if s.future_covariates is None else s.future_covariates[start:stop]
            ),
        )
        for s in panel
    ]


_FITTED: dict[str, Forecaster] = {}


@pytest.fixture(params=sorted(TINY))
def model(request: pytest.FixtureRequest) -> Forecaster:
    name: str = request.param
    if name not in _FITTED:
        m = io.create(io.config_from_dict({**SHARED, **TINY[name]}))
        panel = _panel()
        m.fit(_cut(panel, 0, 220), _cut(panel, 220 - LOOKBACK, T))
        _FITTED[name] = m
    return _FITTED[name]


def _inputs(horizon: int, end: int = 260) -> tuple[np.ndarray, np.ndarray]:
    panel = _panel()
    history = np.stack([s.values[:end] for s in panel])  # [2, end]
    fut = np.stack([s.future_covariates[: end + horizon] for s in panel])  # type: ignore[index]
    return history, fut  # [2, end], [2, end + H, 2]


def test_meta_lists_future_covariates_with_training_stats(model: Forecaster) -> None:
    meta = model.meta
    assert meta.future_covariates == ("promo", "temp")
    if model.reads_future_covariates:
        assert len(meta.future_stats) == 2
        (promo_mean, promo_std), (temp_mean, _) = meta.future_stats
        assert 0.2 < promo_mean < 0.4 and 0.4 < promo_std < 0.5 and 14 < temp_mean < 16
    else:
        assert meta.future_stats == ()
        assert "ignored" in meta.extra["future_covariates"]


def test_forecast_changes_when_only_a_future_covariate_changes(model: Forecaster) -> None:
    history, fut = _inputs(MAX_H)
    base = model.predict(history, MAX_H, (80,), future_covariates=fut)
    promoted = fut.copy()
    promoted[:, -MAX_H:, 0] = 1.0 - promoted[:, -MAX_H:, 0]  # flip the horizon's promotions
    moved = model.predict(history, MAX_H, (80,), future_covariates=promoted)
    assert base.mean.shape == (2, MAX_H) and np.isfinite(base.mean).all()
    changed = np.abs(moved.mean - base.mean).max()
    if model.reads_future_covariates:
        assert changed > 1e-3, "the forecast ignores the horizon's future covariates"
    else:
        assert changed == 0.0


def test_rolled_forecast_reads_each_blocks_values(model: Forecaster) -> None:
    horizon = 2 * MAX_H + 1
    history, fut = _inputs(horizon)
    short = model.predict(history, MAX_H, (), future_covariates=fut[:, : 260 + MAX_H])
    long = model.predict(history, horizon, (), future_covariates=fut)
    assert long.rolled and long.mean.shape == (2, horizon)
    assert np.allclose(long.mean[:, :MAX_H], short.mean, atol=1e-5)
    later = fut.copy()
    later[:, -1, 0] += 5.0  # only the last requested step's promotion
    moved = model.predict(history, horizon, (), future_covariates=later)
    assert np.allclose(moved.mean[:, : 2 * MAX_H], long.mean[:, : 2 * MAX_H], atol=1e-5)
    assert (np.abs(moved.mean[:, -1] - long.mean[:, -1]).max() > 1e-4) == (
        model.reads_future_covariates
    )


def test_save_load_round_trips_future_covariates(model: Forecaster, tmp_path: Path) -> None:
    io.save(model, tmp_path / "m")
    loaded = io.load(tmp_path / "m")
    assert loaded.meta.future_covariates == model.meta.future_covariates
    assert loaded.meta.future_stats == model.meta.future_stats
    history, fut = _inputs(MAX_H + 2)
    a = model.predict(history, MAX_H + 2, (80, 95), future_covariates=fut)
    b = loaded.predict(history, MAX_H + 2, (80, 95), future_covariates=fut)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.upper[95], b.upper[95])


def test_predict_names_missing_wrong_shape_and_nan(model: Forecaster) -> None:
    history, fut = _inputs(MAX_H)
    with pytest.raises(ForecastInputError, match=r"future_covariates are required.*'promo'"):
        model.predict(history, MAX_H, ())
    with pytest.raises(ForecastInputError, match=r"shape \[2, 265, 2\] .* \[2, 266, 2\]"):
        model.predict(history, MAX_H, (), future_covariates=fut[:, :-1])
    bad = fut.copy()
    bad[1, 260 + 3, 1] = np.nan
    with pytest.raises(
        ForecastInputError, match=r"future_covariates\['temp'\] .* \(row 1, horizon index 3\)"
    ):
        model.predict(history, MAX_H, (), future_covariates=bad)


def test_fit_names_a_gap_in_a_future_covariate_by_row_and_column() -> None:
    panel = _panel()
    fut = panel[0].future_covariates.copy()  # type: ignore[union-attr]
    fut[17, 1] = np.nan
    broken = [SeriesData(panel[0].values, panel[0].timestamps, None, "s0", future_covariates=fut)]
    m = io.create(io.config_from_dict({**SHARED, **TINY["esn"]}))
    message = r"series s0: future_covariates .*row 17, column 1"
    with pytest.raises(ForecastInputError, match=message):
        m.fit(broken, broken)


def test_config_refuses_a_column_in_both_lists() -> None:
    with pytest.raises(ConfigError, match=r"\['promo'\] are listed in both covariates and future"):
        io.config_from_dict({**SHARED, **TINY["esn"], "covariates": ["promo"]})


@pytest.mark.parametrize("name", ["gru-segments", "lstm-direct", "esn"])
def test_future_covariates_sit_next_to_calendar_and_past_covariates(
    name: str, tmp_path: Path
) -> None:
    config = {**SHARED, **TINY[name], "calendar": True, "covariates": ["load"]}
    model = io.create(io.config_from_dict(config))
    panel = [
        SeriesData(
            s.values,
            s.timestamps,
            s.values[:, None] * 0.5,  # a past covariate [T, 1]
            s.series_id,
            future_covariates=s.future_covariates,
        )
        for s in _panel()
    ]

    def cut(start: int, stop: int) -> list[SeriesData]:
        return [
            SeriesData(
                s.values[start:stop],
                s.timestamps[start:stop],  # type: ignore[index]
                s.covariates[start:stop],  # type: ignore[index]
                s.series_id,
                future_covariates=s.future_covariates[start:stop],  # type: ignore[index]
            )
            for s in panel
        ]

    model.fit(cut(0, 220), cut(220 - LOOKBACK, T))
    history, fut = _inputs(MAX_H)
    args = {
        "timestamps": np.stack([s.timestamps[:260] for s in panel]),  # type: ignore[index]
        "covariates": np.stack([s.covariates[:260] for s in panel]),  # type: ignore[index]
    }
    base = model.predict(history, MAX_H, (80,), future_covariates=fut, **args)
    flipped = fut.copy()
    flipped[:, -MAX_H:, 0] = 1.0 - flipped[:, -MAX_H:, 0]
    moved = model.predict(history, MAX_H, (80,), future_covariates=flipped, **args)
    assert np.abs(moved.mean - base.mean).max() > 1e-3
    io.save(model, tmp_path / "m")
    again = io.load(tmp_path / "m").predict(history, MAX_H, (80,), future_covariates=fut, **args)
    assert np.array_equal(again.mean, base.mean)
