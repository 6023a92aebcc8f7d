"""SeriesFrame invariants, conversions, fingerprint, and frequency inference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.data.frame import SeriesFrame, canonical_frequency, grid, infer_frequency
from training.errors import DataError


def _table(ids: list[str], starts: list[str], n: int, freq: str = "h") -> pd.DataFrame:
    parts = []
    for k, (sid, start) in enumerate(zip(ids, starts, strict=True)):
        stamps = grid(pd.Timestamp(start), pd.Timestamp(start) + pd.Timedelta(days=400), freq)[:n]
        parts.append(
            pd.DataFrame(
                {
                    "series_id": sid,
                    "timestamp": stamps,
                    "value": np.arange(n, dtype=np.float64) + 100 * k,
                    "temp": np.linspace(0.0, 1.0, n),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _frame(table: pd.DataFrame, freq: str = "h") -> SeriesFrame:
    return SeriesFrame(table=table, frequency=freq, target="y", covariates=("temp",), source="test")


def test_properties_and_to_series() -> None:
    frame = _frame(_table(["a", "b"], ["2024-01-01", "2024-01-01"], 30))
    assert (frame.rows, frame.n_series, frame.series_ids()) == (60, 2, ["a", "b"])
    assert frame.start == pd.Timestamp("2024-01-01")
    assert frame.end == pd.Timestamp("2024-01-02 05:00")
    series = frame.to_series()
    assert [s.series_id for s in series] == ["a", "b"]
    assert series[1].values.dtype == np.float32 and series[1].values.shape == (30,)
    assert series[1].values[0] == 100.0
    assert series[0].timestamps is not None and series[0].timestamps.dtype == "datetime64[ns]"
    assert series[0].covariates is not None and series[0].covariates.shape == (30, 1)


def test_fingerprint_is_stable_and_sensitive() -> None:
    table = _table(["a"], ["2024-01-01"], 30)
    first = _frame(table).fingerprint()
    again = _frame(table.copy()).fingerprint()
    assert first == again
    assert set(first) >= {"source", "rows", "series", "start", "end", "sha256"}
    assert first["rows"] == 30 and first["start"] == "2024-01-01T00:00:00"
    changed = table.copy()
    changed.loc[5, "value"] += 1e-9
    assert _frame(changed).fingerprint()["sha256"] != first["sha256"]


def test_business_day_frame_must_hold_every_weekday() -> None:
    table = _table(["a"], ["2024-01-01"], 20, freq="B")
    assert _frame(table, "B").rows == 20
    with pytest.raises(
        DataError,
        match=r"series 'a' is not regular at frequency 'B' at table "
        r"row 2 \(timestamp 2024-01-04",
    ):
        _frame(table.drop(index=2).reset_index(drop=True), "B")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.drop(columns="temp"), r"table columns are .*expected \['series_id'"),
        (
            lambda t: t.assign(value=t["value"].where(t.index != 4)),
            r"column 'value' has a NaN or infinite value at table row 4",
        ),
        (
            lambda t: t.drop(index=7).reset_index(drop=True),
            r"series 'a' is not regular at frequency 'h' at table row 7 \(timestamp 2024-01-01 08",
        ),
        (lambda t: t.iloc[::-1].reset_index(drop=True), "series_id is not sorted"),
        (
            lambda t: t.assign(timestamp=t["timestamp"].astype("datetime64[us]")),
            "column 'timestamp' has dtype datetime64\\[us\\]; expected datetime64\\[ns\\]",
        ),
        (
            lambda t: t.assign(value=t["value"].astype(np.float32)),
            "column 'value' has dtype float32; expected float64",
        ),
        (lambda t: t.iloc[:0], "the table is empty"),
        (lambda t: t.assign(series_id=1), "column 'series_id' has dtype int64; expected strings"),
    ],
)
def test_invariants_are_enforced(mutate, message) -> None:  # type: ignore[no-untyped-def]
    table = _table(["a", "b"], ["2024-01-01", "2024-01-01"], 12)
    with pytest.raises(DataError, match=message):
        _frame(mutate(table))


def test_frequency_must_be_canonical() -> None:
    table = _table(["a"], ["2024-01-01"], 12)
    with pytest.raises(DataError, match="frequency '60min' is not canonical; use 'h'"):
        _frame(table, "60min")
    with pytest.raises(DataError, match="test: unknown frequency: frequency 'M' is not supported"):
        _frame(table, "M")


@pytest.mark.parametrize(
    ("pandas_freq", "start", "expected"),
    [
        ("h", "2024-01-01", "h"),
        ("15min", "2024-01-01", "15min"),
        ("3h", "2024-01-01", "3h"),
        ("D", "2024-01-01", "D"),
        ("B", "2024-01-01", "B"),
        ("7D", "2024-01-01", "W"),
    ],
)
def test_infer_frequency(pandas_freq: str, start: str, expected: str) -> None:
    stamps = pd.date_range(start, periods=40, freq=pandas_freq).to_numpy()
    # a few absent stamps must not change the median step
    assert infer_frequency([np.delete(stamps, [5, 9])], where="f.csv") == expected


def test_infer_business_days_with_holidays() -> None:
    days = pd.bdate_range("2024-01-01", periods=60).to_numpy()
    assert infer_frequency([np.delete(days, [0, 11, 30])], where="f.csv") == "B"


def test_infer_frequency_errors() -> None:
    monthly = pd.date_range("2020-01-31", periods=24, freq="ME").to_numpy()
    with pytest.raises(
        DataError,
        match=r"f.csv: unknown frequency: the median step between "
        r"timestamps is 31 days.*pass freq explicitly",
    ):
        infer_frequency([monthly], where="f.csv")
    with pytest.raises(DataError, match="fewer than two timestamps"):
        infer_frequency([monthly[:1]], where="f.csv")


def test_canonical_frequency() -> None:
    assert canonical_frequency("60min", where="x") == "h"
    with pytest.raises(
        DataError,
        match=r"x: unknown frequency: frequency 'hourly' is not "
        r"supported; use \"h\"",
    ):
        canonical_frequency("hourly", where="x")
