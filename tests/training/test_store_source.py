"""load_store: stored series -> a SeriesFrame the pipeline and baselines consume."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tests.training.test_store import hours, store_fixture, store_url_fixture  # noqa: F401
from training.data.catalogue import load_dataset
from training.data.sources.store import load_store, parse_series_ids
from training.errors import DataError
from training.evaluation.backtest import run_baselines
from training.store import SeriesNotFoundError, SeriesStore


def _seed(
    store: SeriesStore,
    sid: str,
    stamps: np.ndarray,
    values: np.ndarray,
    freq: str = "h",
    target: str = "load",
    **covariates: np.ndarray,
) -> None:
    store.upsert_series(sid, frequency=freq, target=target)
    store.upsert_observations(sid, stamps, values, covariates or None)


def test_stored_series_come_back_as_a_valid_sorted_frame(store: SeriesStore) -> None:
    rng = np.random.default_rng(1)
    b_values, a_values = rng.normal(size=30), rng.normal(size=20)
    _seed(store, "b", hours(0, 30), b_values, temp=np.arange(30.0))
    _seed(store, "a", hours(5, 20), a_values, temp=np.arange(20.0))
    frame = load_store(store, ["b", "a"], covariates=["temp"])
    assert list(frame.table.columns) == ["series_id", "timestamp", "value", "temp"]
    assert frame.series_ids() == ["a", "b"]
    assert (frame.frequency, frame.target, frame.covariates) == ("h", "load", ("temp",))
    assert frame.source == "store:b,a"
    assert frame.notes == (f"read from the series store at {store.url}",)
    series = {s.series_id: s for s in frame.to_series()}
    np.testing.assert_array_equal(series["a"].values, a_values.astype(np.float32))
    np.testing.assert_array_equal(series["b"].timestamps, hours(0, 30).astype("datetime64[ns]"))
    np.testing.assert_array_equal(series["b"].covariates[:, 0], np.arange(30.0))


def test_a_bundled_dataset_round_trips_through_the_store(store: SeriesStore) -> None:
    source = load_dataset("stock/aapl", covariates=["Volume"]).table.iloc[-300:]
    _seed(
        store,
        "aapl",
        source["timestamp"].to_numpy(),
        source["value"].to_numpy(),
        freq="B",
        target="Adj Close",
        Volume=source["Volume"].to_numpy(),
    )
    frame = load_store(store, ["aapl"], covariates=["Volume"])
    expected = source.assign(series_id="aapl").reset_index(drop=True)
    pd.testing.assert_frame_equal(frame.table, expected)
    assert frame.target == "Adj Close"


def test_the_frame_feeds_the_baseline_backtest(store: SeriesStore) -> None:
    stamps = hours(0, 24 * 14)
    values = 10 + np.sin(2 * np.pi * np.arange(stamps.size) / 24)  # [T] daily season
    _seed(store, "daily-cycle", stamps, values)
    result = run_baselines(load_store(store, ["daily-cycle"]), horizon=6)
    assert result["series"] == 1 and result["windows"] > 0
    seasonal = result["baselines"]["seasonal_naive"]
    assert seasonal["mae"] < 1e-9 < result["baselines"]["naive"]["mae"]


def test_holes_are_filled_by_the_policy_and_noted(store: SeriesStore) -> None:
    _seed(store, "gappy", hours(0, 10), np.arange(10.0))
    store.upsert_observations("gappy", hours(13, 5), np.arange(13.0, 18.0))  # 3 hours absent
    frame = load_store(store, ["gappy"], fill_limit=0.17)
    np.testing.assert_array_equal(frame.table["value"], np.arange(18.0))
    assert frame.notes[1] == (
        "series 'gappy': 3 missing value(s) of 'load' filled by interpolate (3 absent "
        "timestamp(s); 16.7% of 18 values)"
    )
    ffilled = load_store(store, ["gappy"], fill="ffill", fill_limit=0.17)
    np.testing.assert_array_equal(ffilled.table["value"][10:13], [9.0, 9.0, 9.0])
    with pytest.raises(
        DataError,
        match=re.escape(
            "series store: 'load' of series 'gappy' at 2024-01-01 10:00:00 is missing and "
            "fill='reject'. Fix: ingest the missing observations, use fill='ffill', or raise "
            "max_gap (fill='interpolate' fills short gaps)"
        ),
    ):
        load_store(store, ["gappy"], fill="reject")
    with pytest.raises(
        DataError,
        match=re.escape(
            "'load' of series 'gappy' at 2024-01-01 10:00:00 begins a gap of 3 steps, longer "
            "than max_gap=2"
        ),
    ):
        load_store(store, ["gappy"], max_gap=2)
    with pytest.raises(
        DataError,
        match=re.escape(
            "series store: series 'gappy': filling would invent 16.7% of 'load' (3 of 18 values "
            "at frequency 'h'), above the fill limit fill_limit=0.05 (5%). Fix: check the "
            "series' stored frequency 'h', ingest the missing observations, or allow it with "
            "fill_limit=0.17"
        ),
    ):
        load_store(store, ["gappy"])


def test_business_day_holidays_are_filled(store: SeriesStore) -> None:
    days = np.array(["2024-03-27", "2024-03-28", "2024-04-01"], dtype="datetime64[D]")
    _seed(store, "stock", days, np.array([1.0, 2.0, 4.0]), freq="B")
    frame = load_store(store, ["stock"], fill_limit=0.25)
    assert frame.table["timestamp"].dt.strftime("%m-%d").tolist() == [
        "03-27",
        "03-28",
        "03-29",
        "04-01",
    ]
    np.testing.assert_array_equal(frame.table["value"], [1.0, 2.0, 3.0, 4.0])


def test_start_and_end_select_a_window(store: SeriesStore) -> None:
    _seed(store, "w", hours(0, 48), np.arange(48.0))
    frame = load_store(store, ["w"], start="2024-01-01T12:00", end="2024-01-02T00:00")
    np.testing.assert_array_equal(frame.table["value"], np.arange(12.0, 25.0))
    with pytest.raises(
        DataError,
        match=re.escape(
            "store series 'w' has no observations between 2025-01-01 and None. Fix: ingest some"
        ),
    ):
        load_store(store, ["w"], start="2025-01-01")


def test_covariates_missing_from_a_series_are_named(store: SeriesStore) -> None:
    _seed(store, "with", hours(0, 5), np.ones(5), temp=np.ones(5))
    _seed(store, "without", hours(0, 5), np.ones(5))
    with pytest.raises(
        DataError,
        match=re.escape("store series 'without' has no covariate 'temp'; stored covariates: none"),
    ):
        load_store(store, ["with", "without"], covariates=["temp"])
    store.upsert_observations("without", hours(5, 1), [1.0], {"temp": [2.0]})
    with pytest.raises(
        DataError,
        match=re.escape(
            "series store: 'temp' of series 'without' at 2024-01-01 00:00:00 starts the series, "
            "so nothing precedes it to fill from"
        ),
    ):
        load_store(store, ["without"], covariates=["temp"])


def test_bad_selections_are_rejected(store: SeriesStore) -> None:
    _seed(store, "hourly", hours(0, 5), np.ones(5))
    _seed(
        store,
        "daily",
        np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[D]"),
        np.ones(2),
        freq="D",
    )
    store.upsert_series("empty", frequency="h", target="y")
    with pytest.raises(
        DataError,
        match=re.escape(
            "stored series have different frequencies ('hourly': 'h', 'daily': 'D'); one frame "
            "needs one frequency"
        ),
    ):
        load_store(store, ["hourly", "daily"])
    with pytest.raises(
        DataError, match=re.escape("store series 'empty' has no observations. Fix: ingest some")
    ):
        load_store(store, ["empty"])
    with pytest.raises(SeriesNotFoundError, match=re.escape("series 'nope' does not exist")):
        load_store(store, ["hourly", "nope"])
    with pytest.raises(DataError, match=re.escape("series id 'hourly' is listed twice")):
        load_store(store, ["hourly", "hourly"])
    with pytest.raises(DataError, match=re.escape("series_ids is empty")):
        load_store(store, [])
    with pytest.raises(
        DataError,
        match=re.escape("fill policy 'zero' is unknown; use one of interpolate, ffill, reject"),
    ):
        load_store(store, ["hourly"], fill="zero")


def test_different_targets_are_called_value(store: SeriesStore) -> None:
    _seed(store, "x", hours(0, 3), np.ones(3), target="mw")
    _seed(store, "y", hours(0, 3), np.ones(3), target="kw")
    frame = load_store(store, ["x", "y"])
    assert frame.target == "value"
    assert frame.notes[-1] == "series have different targets (kw, mw); called 'value'"


def test_series_flag_parsing() -> None:
    assert parse_series_ids("a, b ,c") == ("a", "b", "c")
    with pytest.raises(DataError, match=re.escape("--series 'a,,b' has an empty id")):
        parse_series_ids("a,,b")
    with pytest.raises(DataError, match=re.escape("series id 'a/b' is not valid")):
        parse_series_ids("a/b")


def test_last_reads_only_each_series_newest_rows(store: SeriesStore) -> None:
    rng = np.random.default_rng(2)
    for i in range(7):  # more series than one UNION statement holds is not needed to check order
        _seed(
            store, f"s{6 - i}", hours(i, 40 + i), rng.normal(size=40 + i), temp=np.arange(40.0 + i)
        )
    full = load_store(store, [f"s{i}" for i in range(7)], covariates=["temp"])
    newest = load_store(store, [f"s{i}" for i in range(7)], covariates=["temp"], last=12)
    assert newest.series_ids() == full.series_ids() == [f"s{i}" for i in range(7)]
    expected = full.table.groupby("series_id", sort=False).tail(12).reset_index(drop=True)
    pd.testing.assert_frame_equal(newest.table, expected)


def test_last_regrids_a_hole_among_the_newest_rows(store: SeriesStore) -> None:
    _seed(store, "regular", hours(0, 30), np.arange(30.0))
    _seed(store, "gappy", hours(0, 20), np.arange(20.0))
    store.upsert_observations("gappy", hours(22, 8), np.arange(22.0, 30.0))  # 2 hours absent
    frame = load_store(store, ["regular", "gappy"], last=10, fill_limit=0.2)
    gappy = frame.table[frame.table["series_id"] == "gappy"]
    np.testing.assert_array_equal(gappy["value"], np.arange(18.0, 30.0))  # 10 read, 2 filled
    assert frame.series_ids() == ["gappy", "regular"]
    assert any("gappy" in note for note in frame.notes[1:])


def test_read_many_spans_several_queries_and_names_an_unknown_id(store: SeriesStore) -> None:
    from training.store import bulk

    ids = [f"m{i:03d}" for i in range(bulk._IDS_PER_QUERY + 5)]
    for n, sid in enumerate(ids):
        _seed(store, sid, hours(0, 6), np.full(6, float(n)))
    rows = store.read_many(ids[::-1], last=4)
    assert rows.ids == ids[::-1] and list(np.diff(rows.bounds)) == [4] * len(ids)
    np.testing.assert_array_equal(rows.values[rows.rows(0)], np.full(4, len(ids) - 1.0))
    np.testing.assert_array_equal(
        rows.timestamps[rows.rows(3)], hours(2, 4).astype("datetime64[ns]")
    )
    with pytest.raises(SeriesNotFoundError, match="nope"):
        store.read_many(["m000", "nope"])
    with pytest.raises(Exception, match="last must be a positive integer"):
        store.read_many(["m000"], last=0)
