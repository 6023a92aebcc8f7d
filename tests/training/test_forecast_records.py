"""Batch forecasts -> forecast-log records: the array path gives what a per-series loop gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.data.frame import SeriesFrame
from training.jobs.forecast_records import forecast_records
from training.store.live_scores import naive_reference


def _frame() -> SeriesFrame:
    rng = np.random.default_rng(0)
    parts = []
    for sid, n in (("b", 50), ("a", 30), ("c", 10)):  # c is shorter than a day: last value
        stamps = pd.date_range("2024-01-01", periods=n, freq="h").as_unit("ns")
        parts.append(
            pd.DataFrame({"series_id": sid, "timestamp": stamps, "value": rng.normal(size=n)})
        )
    table = pd.concat(parts, ignore_index=True).sort_values(["series_id", "timestamp"])
    return SeriesFrame(table=table.reset_index(drop=True), frequency="h", target="y")


def _forecasts(frame: SeriesFrame, horizon: int) -> pd.DataFrame:
    rows = []
    for sid, part in frame.table.groupby("series_id"):
        origin = part["timestamp"].iloc[-1]
        for step in range(1, horizon + 1):
            mean = float(step) + ord(str(sid))
            rows.append({
                "series_id": sid, "origin": origin, "step": step,
                "timestamp": origin + pd.Timedelta(hours=step), "mean": mean,
                "lower_80": mean - 1, "upper_80": mean + 1,
            })  # fmt: skip
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # any row order


def test_records_match_a_per_series_build() -> None:
    frame = _frame()
    records = forecast_records(_forecasts(frame, 30), frame, model="m", version=3, levels=[80])
    assert [r.series_id for r in records] == ["a", "b", "c"]
    for record in records:
        history = frame.table[frame.table["series_id"] == record.series_id]["value"].to_numpy()
        assert record.version == "3" and record.model == "m"
        np.testing.assert_array_equal(record.naive, naive_reference(history, 30, "h"))
        np.testing.assert_array_equal(record.mean, np.arange(1, 31) + ord(record.series_id))
        lower, upper = record.intervals[80]
        np.testing.assert_array_equal(upper - lower, np.full(30, 2.0))
        stamps = frame.table[frame.table["series_id"] == record.series_id]["timestamp"]
        assert record.origin == stamps.iloc[-1].to_pydatetime()
        assert record.timestamps[0] == np.datetime64(stamps.iloc[-1] + pd.Timedelta(hours=1))


def test_ragged_forecasts_are_refused() -> None:
    frame = _frame()
    table = _forecasts(frame, 4)
    with pytest.raises(ValueError, match=r"steps 1\.\.H"):
        forecast_records(table.iloc[1:], frame, model="m", version=1, levels=[80])
