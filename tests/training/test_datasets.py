"""Bundled datasets: registry, row counts, and each quirk's logged policy."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data import catalogue as datasets
from training.data.catalogue import BUNDLED, SALES_WEEK0, data_dir, load_dataset
from training.errors import DataError

NAMES = [
    "load/etth1",
    "load/pjm",
    "stock/goog",
    "stock/googl",
    "stock/aapl",
    "stock/msft",
    "stock/amzn",
    "demand/bike-hourly",
    "demand/sales-weekly",
]
# rows = observations in the long table after the policies (what `forecast datasets` shows)
ROWS = {
    "load/etth1": (17420, 1, "h"),
    "load/pjm": (43848, 1, "h"),
    "stock/goog": (4257, 1, "B"),
    "stock/googl": (4257, 1, "B"),
    "stock/aapl": (10436, 1, "B"),
    "stock/msft": (9067, 1, "B"),
    "stock/amzn": (6152, 1, "B"),
    "demand/bike-hourly": (17544, 1, "h"),
    "demand/sales-weekly": (811 * 52, 811, "W"),
}


def test_registry_declares_the_nine_datasets() -> None:
    assert list(BUNDLED) == NAMES
    for name, spec in BUNDLED.items():
        assert spec.name == name and name.startswith(spec.domain + "/")
        assert (data_dir() / spec.path).is_file()
    assert BUNDLED["load/etth1"].target_col == "OT"
    assert BUNDLED["load/etth1"].covariates == ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL")
    assert BUNDLED["stock/aapl"].target_col == "Adj Close"
    assert BUNDLED["demand/sales-weekly"].reader == "wide_weekly"


@pytest.mark.parametrize("name", NAMES)
def test_row_counts_and_speed(name: str) -> None:
    started = time.perf_counter()
    frame = load_dataset(name, covariates=BUNDLED[name].covariates)
    seconds = time.perf_counter() - started
    assert (frame.rows, frame.n_series, frame.frequency) == ROWS[name]
    assert frame.target == BUNDLED[name].target_col
    assert frame.source == f"bundled:{name}"
    assert seconds < 1.0
    assert load_dataset(name, covariates=BUNDLED[name].covariates) is frame  # cached


def test_etth1_is_one_regular_hourly_series_with_covariates() -> None:
    frame = load_dataset("load/etth1", covariates=["HUFL", "LULL"])
    assert frame.series_ids() == ["load/etth1"]
    assert (frame.start, frame.end) == (
        pd.Timestamp("2016-07-01"),
        pd.Timestamp("2018-06-26 19:00"),
    )
    assert list(frame.table.columns) == ["series_id", "timestamp", "value", "HUFL", "LULL"]
    assert frame.table["value"].iloc[0] == pytest.approx(30.5310001373291)
    assert frame.notes == ()
    assert load_dataset("load/etth1").covariates == ()


def test_pjm_markers_are_read_as_nan_and_target_is_clean() -> None:
    frame = load_dataset("load/pjm")
    assert frame.notes == (
        "markers EMPTY, MISSING read as NaN; target 'cleaned demand (MW)' "
        "has 0 NaN, nothing filled",
    )
    assert frame.table["value"].between(58_480, 152_890).all()


def test_bike_fills_165_hours_by_interpolation(caplog: pytest.LogCaptureFixture) -> None:
    datasets._load_cached.cache_clear()  # the policy is logged when the file is parsed
    with caplog.at_level(logging.INFO, logger="training.data.sources.bundled"):
        frame = load_dataset("demand/bike-hourly", covariates=["temp", "workingday"])
    (note,) = frame.notes
    assert note.startswith(
        "165 missing hour(s) inserted (longest gap 36 h from 2012-10-29 01:00:00)"
    )
    assert note in caplog.text
    table = frame.table.set_index("timestamp")
    # 2011-01-18 00:00 .. 11:00 are absent; 2011-01-17 23:00 has cnt 4, 2011-01-18 12:00 has 3
    assert table.loc["2011-01-18 05:00", "value"] == pytest.approx(4 + (3 - 4) * 6 / 13)
    # Monday 2012-10-29 is a working day even though most of its hours are absent
    assert table.loc["2012-10-29 12:00", "workingday"] == 1.0


def test_aapl_null_row_dropped_and_holidays_carried_forward() -> None:
    frame = load_dataset("stock/aapl", covariates=["Volume"])
    assert frame.notes == (
        "dropped 1 all-null row(s) (1981-08-10); refilled by the business-day policy below",
        "reindexed to business days: 350 weekday(s) absent (349 exchange holiday(s), 1 dropped "
        "row(s)) carried forward from the previous close",
    )
    table = frame.table.set_index("timestamp")
    assert table.loc["1981-08-10", "value"] == table.loc["1981-08-07", "value"]
    # 2020-11-26 was Thanksgiving: carried forward from Wednesday's close
    assert table.loc["2020-11-26", "value"] == table.loc["2020-11-25", "value"]
    assert not table.index.day_of_week.isin([5, 6]).any()
    assert frame.table["Volume"].dtype == np.float64


def test_sales_weekly_wide_layout_becomes_811_series_of_52_weeks() -> None:
    frame = load_dataset("demand/sales-weekly")
    assert frame.n_series == 811 and frame.rows == 811 * 52
    assert "anchored at 2017-01-02" in frame.notes[0]
    assert frame.start == pd.Timestamp(SALES_WEEK0) == pd.Timestamp("2017-01-02")
    assert frame.end == pd.Timestamp("2017-01-02") + pd.Timedelta(weeks=51)
    raw = pd.read_csv(data_dir() / BUNDLED["demand/sales-weekly"].path)
    p1 = frame.table[frame.table["series_id"] == "P1"]["value"].to_numpy()
    np.testing.assert_array_equal(
        p1, raw.loc[raw["Product_Code"] == "P1", [f"W{k}" for k in range(52)]].to_numpy()[0]
    )


def test_unknown_name_lists_the_names() -> None:
    with pytest.raises(
        DataError,
        match=r"dataset 'load/etth2' is not bundled; choose one of: "
        r"load/etth1, load/pjm, stock/goog, .*demand/sales-weekly\. Fix",
    ):
        load_dataset("load/etth2")


def test_unknown_covariate_lists_the_available_ones() -> None:
    with pytest.raises(
        DataError,
        match=r"dataset 'stock/goog': covariate 'Adj Close' is not "
        r"available; available covariates: Open, High, Low, Close, Volume",
    ):
        load_dataset("stock/goog", covariates=["Adj Close"])
    with pytest.raises(DataError, match="available covariates: none"):
        load_dataset("load/pjm", covariates=["raw demand (MW)"])


def test_data_dir_override_and_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "load").mkdir()
    shutil.copy(data_dir() / "load/ETTh1.csv", tmp_path / "load/ETTh1.csv")
    monkeypatch.setenv("FORECAST_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    assert load_dataset("load/etth1").rows == 17420
    with pytest.raises(
        DataError,
        match=r"dataset 'load/pjm': file .*PJM.csv not found\. Fix: "
        r"restore data/ from the repository or point FORECAST_DATA_DIR",
    ):
        load_dataset("load/pjm")
