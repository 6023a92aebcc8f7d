"""The forecast log's writer packs what the serving process sends into exactly the rows
`ForecastLog.record` builds one forecast at a time, many forecasts at once; repeats of a key
are written once and counted as written, and each forecast that cannot be logged is dropped
and counted alone."""

from __future__ import annotations

import pickle
from datetime import datetime
from typing import Any

import numpy as np

from models.features import season_length
from service.forecast_log import _datagram
from service.forecast_writer import DROPPED, WriterTarget, _Writer
from training.store.forecast_log import ForecastRecord, forecast_row, naive_reference

NOW = datetime(2024, 6, 1)


def _forecast(
    series_id: str,
    hour: int,
    mean: list[float],
    *,
    history: int = 48,
    levels: tuple[str, ...] = ("80", "95"),
    frequency: str = "h",
) -> tuple[bytes, ForecastRecord]:
    """What `ForecastRecorder.submit` sends for one hourly forecast, and its record."""
    origin = np.datetime64("2024-01-01T00:00") + np.timedelta64(hour, "h")
    stamps = [str(origin + np.timedelta64(h + 1, "h")) for h in range(len(mean))]
    values = np.sin(np.arange(history) + hour) * 10 + hour  # [T]
    bounds = {k: ([m - float(k) for m in mean], [m + float(k) / 2 for m in mean]) for k in levels}
    result = {
        "timestamps": stamps,
        "mean": mean,
        "intervals": {k: {"lower": lo, "upper": hi} for k, (lo, hi) in bounds.items()},
    }
    try:
        tail = values[-season_length(frequency) :]
    except ValueError:
        tail = values  # as submit does for a frequency it does not know
    data = pickle.dumps(_datagram("m", "1", series_id, frequency, origin, tail, result))
    record = ForecastRecord(
        model="m",
        version="1",
        series_id=series_id,
        origin=origin.astype("datetime64[us]").item(),
        timestamps=np.array(stamps, dtype="datetime64[us]"),
        mean=mean,
        intervals={int(k): bound for k, bound in bounds.items()},
        naive=naive_reference(values, len(mean), "h"),
    )
    return data, record


def _writer() -> tuple[_Writer, list[int]]:
    counts = [0, 0]
    return _Writer(None, counts, WriterTarget("unused", 1, 1.0, 0, 0, 0)), counts  # type: ignore[arg-type]


def _same(rows: list[dict[str, Any]], records: list[ForecastRecord]) -> None:
    expected = {(r["series_id"], r["origin"]): r for r in (forecast_row(x, NOW) for x in records)}
    assert {(r["series_id"], r["origin"]): r for r in rows} == expected


def test_many_forecasts_pack_into_the_rows_record_builds() -> None:
    sent = [
        _forecast("a", 48, [1.0, 2.5, 3.0]),
        _forecast("b", 50, [7.0, 8.0, 9.0]),
        _forecast("c", 60, [4.0, 5.0, 6.0], history=10),  # shorter than a day: a random walk
        _forecast("d", 61, [1.0] * 30, levels=("80",)),  # another horizon and levels
        _forecast("e", 62, [2.0, 3.0], levels=()),
    ]
    writer, counts = _writer()
    rows, forecasts = writer._pack([data for data, _ in sent])
    for row in rows:
        row["created_at"] = NOW
    _same(rows, [record for _, record in sent])
    assert forecasts == 5 and counts[DROPPED] == 0


def test_repeats_are_written_once_and_bad_forecasts_dropped_alone() -> None:
    first, _ = _forecast("a", 48, [1.0, 2.0, 3.0])
    last, kept = _forecast("a", 48, [5.0, 6.0, 7.0])  # same key: replaces the first
    other, other_record = _forecast("b", 48, [1.0, 1.0, 1.0])
    nan, _ = _forecast("c", 48, [1.0, float("nan"), 3.0])  # alike the others: packed with them
    odd, _ = _forecast("d", 48, [1.0, 2.0, 3.0], frequency="fortnightly")
    writer, counts = _writer()
    rows, forecasts = writer._pack([first, nan, last, b"not a pickle", odd, other])
    for row in rows:
        row["created_at"] = NOW
    _same(rows, [kept, other_record])
    assert forecasts == 3  # both of "a" and the one of "b"
    assert counts[DROPPED] == 3  # the NaN, the bytes, the unknown frequency
