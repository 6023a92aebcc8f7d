"""Data-driven defaults (training.jobs.defaults): per frequency and data length; given keys win."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import io as models_io
from training.jobs import defaults
from training.jobs.experiment import TrainSpec
from training.jobs.preparation import build_config, default_lookback, load_frame

REPO = Path(__file__).resolve().parents[2]


def _spec(tmp: Path, freq: str, rows: int, horizon: int, **extra: object) -> TrainSpec:
    stamps = pd.date_range("2020-01-06", periods=rows, freq=freq).astype(str)
    values = 1000 + np.random.default_rng(0).standard_normal(rows).cumsum()
    path = tmp / f"{freq}-{rows}.csv"
    pd.DataFrame({"t": stamps, "y": values}).to_csv(path, index=False)
    return TrainSpec.from_flags(
        data=str(path), time_col="t", target_col="y", horizon=horizon, **extra
    )


@pytest.mark.parametrize(
    ("freq", "rows", "horizon", "family", "lookback", "segment"),
    [
        ("h", 5000, 24, "gru", 168, 24),  # a week of hours, one day per recurrent step
        ("h", 5000, 24, "esn", 168, None),
        ("h", 400, 24, "gru", 120, 24),  # capped by the training rows, whole days
        ("B", 3000, 5, "gru", 20, 5),  # four business weeks
        ("D", 3000, 7, "lstm", 28, 7),
        ("W", 300, 4, "gru", 52, 4),  # a year of weeks
        ("W", 52, 4, "gru", 16, 4),  # 52 weeks: capped at (37 - 4) // 2 -> 16
    ],
)
def test_lookback_and_segment_follow_the_frequency_and_the_length(
    tmp_path: Path, freq: str, rows: int, horizon: int, family: str, lookback: int,
    segment: int | None,
) -> None:  # fmt: skip
    spec = _spec(tmp_path, freq, rows, horizon, family=family)
    frame = load_frame(spec)
    got = default_lookback(frame, spec)
    assert got == lookback
    config = build_config(spec, frame, got)
    if segment is not None:
        assert config.segment_length == segment
        assert config.norm == "revin"


def test_recurrent_schedule_and_budget_are_derived(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "h", 5000, 24, family="gru")
    frame = load_frame(spec)
    config = build_config(spec, frame, default_lookback(frame, spec))
    assert config.lr_schedule == "plateau"
    assert defaults.MIN_EPOCHS <= config.epochs <= defaults.MAX_EPOCHS
    assert config.max_epochs == 2 * config.epochs
    reasons = defaults.derive(spec, frame).reasons
    assert set(reasons) >= {"lookback", "norm", "epochs", "lr_schedule", "segment_length"}


def test_large_panels_sample_a_bounded_number_of_windows_per_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tmp_path, "h", 5000, 24, family="gru")
    frame = load_frame(spec)
    lookback = default_lookback(frame, spec)
    assert build_config(spec, frame, lookback).epoch_windows == 0  # small data: full passes
    monkeypatch.setattr(defaults, "PANEL_EPOCH_WINDOWS", 1000)
    config = build_config(spec, frame, lookback)
    assert config.epoch_windows == 1000
    assert "epoch_windows" in defaults.derive(spec, frame).reasons
    # the epoch budget is counted in sampled epochs: 1000 windows are 16 steps of 64
    assert config.epochs == defaults.MAX_EPOCHS
    given = _spec(tmp_path, "h", 5000, 24, family="gru", model={"epoch_windows": 0})
    assert build_config(given, load_frame(given), lookback).epoch_windows == 0


def test_given_keys_win_over_derived_ones(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path, "h", 5000, 24, family="gru", lookback=96, epochs=5,
        model={"lr": 1e-3, "norm": "last", "calendar": False},
    )  # fmt: skip
    frame = load_frame(spec)
    config = build_config(spec, frame, 96)
    assert (config.lookback, config.epochs, config.norm) == (96, 5, "last")
    assert config.lr_schedule == "constant"  # a rate the user set is not rescheduled
    assert config.max_epochs == 0  # an epoch count the user set is not extended
    assert config.calendar is False
    assert not {"lookback", "epochs", "norm", "lr_schedule", "max_epochs"} & set(
        defaults.derive(spec, frame).values
    )


@pytest.mark.parametrize("family", ["gru", "lstm", "rnn", "esn"])
def test_tuned_etth1_configs_are_untouched(family: str) -> None:
    """The tuned ETTh1 experiment files get exactly the config they were measured with: the
    family's config defaults, the pipeline's fields and the file's [model] keys, nothing
    derived on top (no schedule, no budget extension, no other norm)."""
    spec = TrainSpec.from_toml(REPO / "configs" / f"load-etth1-{family}.toml")
    frame = load_frame(spec)
    config = build_config(spec, frame, spec.lookback or default_lookback(frame, spec))
    expected = models_io.config_from_dict({"family": family}).to_dict()
    expected |= {
        "lookback": spec.lookback, "max_horizon": spec.horizon, "frequency": frame.frequency,
        "target": frame.target, "covariates": list(frame.covariates), "device": spec.device,
        "levels": list(spec.levels), **dict(spec.model),
    }  # fmt: skip
    if spec.epochs is not None:
        expected["epochs"] = spec.epochs
    assert config.to_dict() == expected


def test_esn_reads_the_calendar_on_sub_daily_data_only(tmp_path: Path) -> None:
    hourly = _spec(tmp_path, "h", 3000, 24, family="esn")
    daily = _spec(tmp_path, "B", 3000, 5, family="esn")
    for spec, calendar in ((hourly, True), (daily, False)):
        frame = load_frame(spec)
        assert build_config(spec, frame, default_lookback(frame, spec)).calendar is calendar
    gru = _spec(tmp_path, "h", 3000, 24, family="gru")
    frame = load_frame(gru)
    assert build_config(gru, frame, default_lookback(frame, gru)).calendar is False
