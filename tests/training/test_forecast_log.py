"""The forecast log on SQLite and PostgreSQL: recording is idempotent, ingestion scores, the
scores match a hand count."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from training.store import SeriesStore, StoreError
from training.store.forecast_log import ForecastRecord, naive_reference, parse_window
from training.store.schema import forecast_log

T0 = datetime(2024, 1, 1)


def _hours(start: int, n: int) -> list[datetime]:
    return [T0 + timedelta(hours=start + i) for i in range(n)]


@pytest.fixture
def store(database_url):
    """A store on SQLite, and on a private PostgreSQL schema when the test URL is set."""
    with SeriesStore(database_url) as s:
        s.upsert_series("a", frequency="h", target="y")
        s.upsert_observations("a", _hours(0, 48), np.arange(48.0))
        yield s


def _record(origin_index: int, mean: list[float], version: str = "1") -> ForecastRecord:
    h = len(mean)
    return ForecastRecord(
        model="m",
        version=version,
        series_id="a",
        origin=T0 + timedelta(hours=origin_index),
        timestamps=_hours(origin_index + 1, h),
        mean=mean,
        intervals={80: ([x - 1 for x in mean], [x + 1 for x in mean])},
        naive=[0.0] * h,
    )


def test_forecasts_are_scored_when_their_actuals_arrive(store):
    store.forecast_log.record([_record(47, [48.0, 50.0, 45.0])])
    assert store.forecast_log.scores(model="m") == []  # nothing observed yet

    store.upsert_observations("a", _hours(48, 2), [48.5, 52.0])  # two of three steps
    [scores] = store.forecast_log.scores(model="m")
    errors = np.array([0.5, 2.0])
    assert scores.overall.points == 2 and scores.overall.forecasts == 1
    assert scores.overall.mae == pytest.approx(errors.mean())
    assert scores.overall.rmse == pytest.approx(np.sqrt((errors**2).mean()))
    assert scores.overall.mase == pytest.approx(errors.sum() / (48.5 + 52.0))
    assert scores.overall.coverage == {80: 0.5}  # 48.5 inside [47, 49]; 52 outside [49, 51]
    assert scores.overall.width == {80: 2.0}
    assert [s.points for s in scores.by_step] == [1, 1]
    assert scores.by_step[1].mae == pytest.approx(2.0)


def test_recording_twice_replaces_and_a_late_record_is_scored_at_once(store):
    store.forecast_log.record([_record(40, [41.0, 42.0])])
    store.forecast_log.record([_record(40, [40.0, 42.0])])  # same key: replaces
    [scores] = store.forecast_log.scores(series_id="a")
    assert scores.overall.points == 2 and scores.overall.forecasts == 1
    assert scores.overall.mae == pytest.approx(0.5)  # actuals 41, 42 were already stored
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(forecast_log)).scalar() == 1


def test_one_batch_scores_the_series_whose_actuals_are_in_and_only_those(store):
    store.upsert_series("b", frequency="h", target="y")
    store.upsert_observations("b", _hours(0, 10), np.arange(10.0))  # b ends before the forecast
    fresh = ForecastRecord(
        model="m", version="1", series_id="b", origin=T0 + timedelta(hours=40),
        timestamps=_hours(41, 2), mean=[1.0, 2.0], intervals={80: ([0.0, 1.0], [2.0, 3.0])},
    )  # fmt: skip
    assert store.forecast_log.record([_record(40, [40.0, 42.0]), fresh]) == 2
    [a] = store.forecast_log.scores(series_id="a")
    assert a.overall.points == 2  # a's actuals 41, 42 were stored: scored at once
    assert store.forecast_log.scores(series_id="b") == []  # nothing of b's horizon has arrived
    store.upsert_observations("b", _hours(41, 1), [1.5])
    assert store.forecast_log.scores(series_id="b")[0].overall.points == 1


def test_a_shorter_forecast_at_the_same_origin_replaces_the_whole_old_one(store):
    store.forecast_log.record([_record(47, [1.0, 2.0, 3.0])])
    assert store.forecast_log.record([_record(47, [5.0])]) == 1
    [logged] = store.forecast_log.forecasts("a")
    assert logged.mean == [5.0] and len(logged.timestamps) == 1


def test_resent_observations_rescore(store):
    store.forecast_log.record([_record(40, [41.0])])
    store.upsert_observations("a", _hours(41, 1), [45.0])
    [scores] = store.forecast_log.scores()
    assert scores.overall.mae == pytest.approx(4.0)


def test_scores_are_per_version_and_windowed_and_last_n(store):
    store.forecast_log.record(
        [_record(i, [float(i + 2)], version="1") for i in range(30, 40)]
        + [_record(i, [float(i + 1)], version="2") for i in range(30, 40)]
    )
    v1, v2 = store.forecast_log.scores(model="m")
    assert (v1.version, v1.overall.mae) == ("1", pytest.approx(1.0))
    assert (v2.version, v2.overall.mae) == ("2", pytest.approx(0.0))
    [windowed] = store.forecast_log.scores(version="1", since=T0 + timedelta(hours=38))
    assert windowed.overall.forecasts == 2
    [latest] = store.forecast_log.scores(version="1", last=3)
    assert latest.overall.forecasts == 3


def test_logged_forecasts_read_back_newest_first_with_actuals(store):
    store.forecast_log.record([_record(45, [46.0, 47.0, 48.0]), _record(46, [47.0, 48.0])])
    newest, older = store.forecast_log.forecasts("a")
    assert newest.origin == T0 + timedelta(hours=46) and older.origin == T0 + timedelta(hours=45)
    assert older.actuals == [46.0, 47.0, None]
    assert older.intervals[80] == ([45.0, 46.0, 47.0], [47.0, 48.0, 49.0])
    assert store.forecast_log.forecasts("a", limit=1) == [newest]
    assert store.forecast_log.forecasts("a", model="other") == []


def test_bad_records_and_windows_name_the_field(store):
    bad = _record(40, [1.0, float("nan")])
    with pytest.raises(StoreError, match="mean of a logged forecast") as info:
        store.forecast_log.record([bad])
    assert info.value.field == "mean"
    with pytest.raises(StoreError, match="since 2024-02-01T00:00:00 is after until") as info:
        parse_window("2024-02-01", "2024-01-01")
    assert info.value.field == "since"
    with pytest.raises(StoreError) as info:
        parse_window(None, "yesterday")
    assert info.value.field == "until"


def test_naive_reference_repeats_the_last_season_or_the_last_value():
    history = np.arange(30.0)
    assert naive_reference(history, 3, "h") == [6.0, 7.0, 8.0]  # 24 steps back
    assert naive_reference(np.arange(5.0), 2, "h") == [4.0, 4.0]  # shorter than a day


def test_series_are_listed_by_prefix(store):
    store.upsert_series("a_b", frequency="h", target="y")
    store.upsert_series("ab", frequency="h", target="y")
    assert [s.id for s in store.list_series("a_")] == ["a_b"]  # "_" is not a wildcard
    assert [s.id for s in store.list_series("a", limit=2)] == ["a", "a_b"]
    assert store.list_series("a")[0].count == 48
