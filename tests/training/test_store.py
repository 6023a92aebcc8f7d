"""SeriesStore on real SQLite files, and on PostgreSQL when FORECAST_TEST_POSTGRES_URL is set.

Each PostgreSQL test gets its own schema (search_path set through the URL), dropped after.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import threading
from collections.abc import Iterator
from datetime import datetime
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from training.errors import DataError
from training.store import (
    SCHEMA_VERSION,
    SeriesNotFoundError,
    SeriesStore,
    StoreError,
    UpsertResult,
    migrations,
)
from training.store import schema as store_schema

T0 = np.datetime64("2024-01-01T00:00", "s")


def hours(start: int, n: int) -> np.ndarray:
    """[n] hourly stamps from T0 + start hours."""
    return T0 + np.arange(start, start + n) * np.timedelta64(1, "h")


def value_at(stamps: np.ndarray) -> np.ndarray:
    """A deterministic value per timestamp, so any write order stores the same data."""
    return (stamps.astype("datetime64[h]").astype(np.int64) % 1000) * 0.5


@pytest.fixture(name="store_url")
def store_url_fixture(database_url: str) -> str:
    """A fresh, empty database (SQLite, or a private PostgreSQL schema: tests/conftest.py)."""
    return database_url


@pytest.fixture(scope="session")
def process_pool() -> Iterator[Pool]:
    """Worker processes for the multi-process tests, spawned once and reused: spawned (not
    forked) so that no lock held by another thread of this process can hang them."""
    with multiprocessing.get_context("spawn").Pool(WRITERS) as pool:
        yield pool


@pytest.fixture(name="store")
def store_fixture(store_url: str) -> Iterator[SeriesStore]:
    with SeriesStore(store_url) as opened:
        yield opened


@pytest.fixture
def hourly(store: SeriesStore) -> SeriesStore:
    """The store with an empty hourly series 'load-a'."""
    store.upsert_series("load-a", frequency="h", target="load_mw", metadata={"unit": "MW"})
    return store


# -- schema ---------------------------------------------------------------------------


def test_migration_creates_the_current_schema_and_a_second_run_is_a_no_op(
    store: SeriesStore, store_url: str
) -> None:
    assert store.schema_version() == SCHEMA_VERSION
    assert store.migrate() == []
    with SeriesStore(store_url) as again:
        assert again.migrate() == []
    inspector = sa.inspect(store.engine)
    for table in store_schema.metadata.sorted_tables:
        assert [c["name"] for c in inspector.get_columns(table.name)] == list(table.c.keys())
    with store.engine.connect() as conn:
        versions = conn.execute(sa.select(store_schema.schema_version.c.version)).scalars()
        assert list(versions) == [m.version for m in migrations.STORE.steps]


def _open_store(url: str) -> int:
    with SeriesStore(url) as opened:
        return opened.schema_version()


def test_processes_opening_a_new_database_at_once_migrate_it_once(
    store_url: str, process_pool: Pool
) -> None:
    assert process_pool.map(_open_store, [store_url] * 3) == [SCHEMA_VERSION] * 3
    with SeriesStore(store_url) as opened, opened.engine.connect() as conn:
        rows = conn.execute(
            sa.select(sa.func.count()).select_from(store_schema.schema_version)
        ).scalar_one()
    assert rows == len(migrations.STORE.steps)


def test_a_database_newer_than_the_code_is_refused(store: SeriesStore, store_url: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            store_schema.schema_version.insert().values(
                version=SCHEMA_VERSION + 1, description="future", applied_at=datetime(2030, 1, 1)
            )
        )
    with pytest.raises(
        StoreError,
        match=re.escape(
            f"the series store tables are at schema version {SCHEMA_VERSION + 1}, newer than "
            f"this code's {SCHEMA_VERSION}. Fix: upgrade rnn-forecast"
        ),
    ):
        SeriesStore(store_url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "mysql://u@h/db",
            "database URL scheme 'mysql' is not supported by the series store. "
            "Fix: use sqlite:///path/to/series.db",
        ),
        (
            "sqlite://",
            "database URL 'sqlite://' names no SQLite file; an in-memory store "
            "would vanish with the process",
        ),
        ("not a url", "database URL 'not a url' cannot be parsed"),
        (
            "postgresql://nobody@127.0.0.1:1/none",
            "cannot open the series store at postgresql+psycopg://nobody@127.0.0.1:1/none (",
        ),
    ],
)
def test_bad_database_urls_are_refused_with_the_fix(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=re.escape(message)):
        SeriesStore(url)


def test_from_env_uses_forecast_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "nested" / "env.db"
    monkeypatch.setenv("FORECAST_DATABASE_URL", f"sqlite:///{path}")
    with SeriesStore.from_env() as opened:
        assert opened.url == f"sqlite:///{path}"
        assert opened.dialect == "sqlite"
    assert path.is_file()


# -- series ---------------------------------------------------------------------------


def test_series_are_created_updated_and_listed(store: SeriesStore) -> None:
    created = store.upsert_series("b-1", frequency="15min", target="kw", metadata={"site": 3})
    assert (created.id, created.frequency, created.target, created.count) == (
        "b-1",
        "15min",
        "kw",
        0,
    )
    assert created.metadata == {"site": 3}
    assert created.first_timestamp is None and created.created_at == created.updated_at
    store.upsert_series("a-1", frequency="60min", target="kw")
    updated = store.upsert_series("b-1", frequency="15min", target="kwh", metadata={"x": [1]})
    assert updated.created_at == created.created_at
    assert updated.updated_at >= created.updated_at
    assert (updated.target, updated.metadata) == ("kwh", {"x": [1]})
    listed = [store.get_series(sid) for sid in ("a-1", "b-1")]
    assert [(s.id, s.frequency, s.count) for s in listed] == [("a-1", "h", 0), ("b-1", "15min", 0)]


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        (
            {"series_id": "a/b"},
            "series_id",
            "series id 'a/b' is not valid: use 1-128 letters, digits, '.', "
            "'_', ':' or '-', starting with a letter or digit",
        ),
        ({"series_id": ""}, "series_id", "series id '' is not valid"),
        (
            {"frequency": "2D"},
            "frequency",
            "frequency: frequency '2D': multiples are allowed only for min and h",
        ),
        ({"frequency": "hourly"}, "frequency", "frequency: frequency 'hourly' is not supported"),
        (
            {"frequency": "999999999999999999999h"},
            "frequency",
            "frequency '999999999999999999999h' has 22 characters; the limit is 16. Fix: use "
            'one of "h", "<n>h", "<n>min", "D", "B" or "W"',
        ),
        (
            {"frequency": "999999999999999h"},
            "frequency",
            "frequency '999999999999999h' steps more than 8784h (366 days), the longest "
            "supported step. Fix: use a step of at most 8784h",
        ),
        (
            {"target": " "},
            "target",
            "target must be a non-empty name of at most 200 printable characters, got ' '",
        ),
        ({"target": "a\x00b"}, "target", "printable characters, got 'a\\x00b'"),
        (
            {"metadata": {"bad": float("nan")}},
            "metadata",
            "metadata cannot be stored as JSON (Out of range float values are not JSON compliant",
        ),
        (
            {"metadata": {"blob": "x" * 70_000}},
            "metadata",
            "metadata is 70012 bytes as JSON; the limit is 65536",
        ),
    ],
)
def test_bad_series_definitions_are_rejected(
    store: SeriesStore, kwargs: dict[str, object], field: str, message: str
) -> None:
    args: dict[str, object] = {
        "series_id": "s",
        "frequency": "h",
        "target": "y",
        "metadata": None,
        **kwargs,
    }
    with pytest.raises(StoreError, match=re.escape(message)) as caught:
        store.upsert_series(args.pop("series_id"), **args)  # type: ignore[arg-type]
    assert caught.value.field == field
    with pytest.raises(SeriesNotFoundError):  # nothing was stored
        store.get_series("s")


def test_frequency_is_fixed_once_a_series_has_observations(hourly: SeriesStore) -> None:
    assert hourly.upsert_series("load-a", frequency="D", target="y").frequency == "D"
    hourly.upsert_series("load-a", frequency="h", target="y")
    hourly.upsert_observations("load-a", hours(0, 3), [1.0, 2.0, 3.0])
    with pytest.raises(
        StoreError,
        match=re.escape(
            "series 'load-a' has 3 observations at frequency 'h'; frequency cannot change to "
            "'D'. Fix: create a new series id"
        ),
    ):
        hourly.upsert_series("load-a", frequency="D", target="y")


def test_unknown_series_is_named(store: SeriesStore) -> None:
    message = re.escape("series 'nope' does not exist. Fix: create it first")
    for call in (
        lambda: store.get_series("nope"),
        lambda: store.latest("nope", 3),
        lambda: store.observations("nope"),
        lambda: store.upsert_observations("nope", hours(0, 1), [1.0]),
    ):
        with pytest.raises(SeriesNotFoundError, match=message):
            call()
    assert issubclass(SeriesNotFoundError, DataError)


# -- observations: writes -------------------------------------------------------------


def test_the_same_batch_twice_stores_the_same_rows(hourly: SeriesStore) -> None:
    stamps = hours(0, 48)
    values = value_at(stamps)
    assert hourly.upsert_observations("load-a", stamps, values) == UpsertResult(48, 0)
    first = hourly.observations("load-a")
    assert hourly.upsert_observations("load-a", stamps, values) == UpsertResult(0, 48)
    second = hourly.observations("load-a")
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    info = hourly.get_series("load-a")
    assert (info.count, info.first_timestamp, info.last_timestamp) == (
        48,
        datetime(2024, 1, 1),
        datetime(2024, 1, 2, 23),
    )


def test_overlapping_batches_count_inserted_and_updated(hourly: SeriesStore) -> None:
    hourly.upsert_observations("load-a", hours(0, 10), np.zeros(10))
    result = hourly.upsert_observations("load-a", hours(5, 10), np.ones(10))
    assert (result.inserted, result.updated, result.total) == (5, 5, 10)
    _, values, _ = hourly.observations("load-a")
    np.testing.assert_array_equal(values, [0.0] * 5 + [1.0] * 10)


def test_read_back_equals_write_with_covariates_and_offsets(hourly: SeriesStore) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=6) * 1e6  # [6] full float64 precision
    temp = rng.normal(size=6)  # [6]
    stamps = [
        "2024-03-01T02:00:00+02:00",
        "2024-03-01T01:00:00Z",
        "2024-03-01 02:00",
        datetime(2024, 3, 1, 3),
        np.datetime64("2024-03-01T04:00"),
        "2024-03-01T00:00:00-05:00",
    ]
    hourly.upsert_observations("load-a", stamps, values.tolist(), {"temp": temp})
    got_stamps, got_values, got_covs = hourly.observations("load-a")
    expected = np.arange("2024-03-01T00", "2024-03-01T06", dtype="datetime64[h]")
    np.testing.assert_array_equal(got_stamps, expected.astype("datetime64[ns]"))
    assert got_stamps.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(got_values, values)
    assert list(got_covs) == ["temp"]
    np.testing.assert_array_equal(got_covs["temp"], temp)


def test_a_batch_without_covariates_keeps_the_stored_ones(hourly: SeriesStore) -> None:
    stamps = hours(0, 4)
    hourly.upsert_observations("load-a", stamps, [1.0, 2, 3, 4], {"temp": [5.0, 6, 7, 8]})
    hourly.upsert_observations("load-a", stamps[2:], [30.0, 40.0])
    hourly.upsert_observations("load-a", hours(4, 1), [50.0])
    _, values, covs = hourly.observations("load-a")
    np.testing.assert_array_equal(values, [1, 2, 30, 40, 50])
    np.testing.assert_array_equal(covs["temp"], [5, 6, 7, 8, np.nan])


BAD_BATCHES = [  # (change to a good batch, StoreError.field, message)
    (
        {"values": [1.0, 2.0, 3.0, float("nan"), 5.0]},
        "values[3]",
        "values[3] is nan; every value must be a finite number. Fix: leave that observation "
        "out or send a number",
    ),
    ({"values": [1.0, 2.0, float("inf"), 4.0, 5.0]}, "values[2]", "values[2] is inf; every"),
    (
        {"values": [1.0, 2.0, 3.0, None, 5.0]},
        "values[3]",
        "values[3] is None, not a number. Fix: send numbers (a missing observation is left "
        "out, not sent as null)",
    ),
    (
        {"values": [1.0, 2.0, 3.0, 4.0]},
        "timestamps",
        "timestamps has 5 entries but values has 4. Fix: send exactly one value per timestamp",
    ),
    (
        {"covariates": {"temp": [1.0, 2.0]}},
        "covariates.temp",
        "covariates.temp has 2 entries but values has 5. Fix: send one covariate value per "
        "timestamp",
    ),
    (
        {"covariates": {"temp": [1.0, 2.0, 3.0, 4.0, float("nan")]}},
        "covariates.temp[4]",
        "covariates.temp[4] is nan; every value must be a finite number",
    ),
    ({"covariates": {"value": [1.0] * 5}}, "covariates", "covariate name 'value' is not valid"),
    (
        {"timestamps": [*hours(100, 3), hours(101, 1)[0], hours(104, 1)[0]]},
        "timestamps[3]",
        "timestamps[3] (2024-01-05T05:00:00) is not after timestamps[2] (2024-01-05T06:00:00); "
        "a batch must be strictly increasing. Fix: sort the batch and drop duplicate timestamps",
    ),
    (
        {"timestamps": [*hours(100, 3), hours(102, 1)[0], hours(104, 1)[0]]},
        "timestamps[3]",
        "timestamps[3] (2024-01-05T06:00:00) is not after timestamps[2]",
    ),
    (
        {"timestamps": [*hours(100, 3), *hours(104, 2)]},
        "timestamps[3]",
        "timestamps[3] (2024-01-05T08:00:00) is not one step of 'h' after timestamps[2] "
        "(2024-01-05T06:00:00), the frequency of series 'load-a'. Fix: send consecutive "
        "observations at that frequency (one batch per unbroken run)",
    ),
    (
        {"timestamps": hours(100, 5) + np.timedelta64(30, "m")},
        "timestamps[0]",
        "timestamps[0] (2024-01-05T04:30:00) is not on the 'h' grid of series 'load-a', which "
        "is anchored at its first observation 2024-01-01T00:00:00. Fix: align the timestamps "
        "to that grid",
    ),
    (
        {"timestamps": ["2024-01-05T04:00", "2024-01-05T05:00", "yesterday", "x", "y"]},
        "timestamps[2]",
        "timestamps[2] is 'yesterday', which cannot be parsed as a timestamp. Fix: send "
        "ISO-8601 timestamps such as 2024-01-31T13:00:00 (naive = UTC; an offset such as Z or "
        "+02:00 is converted to UTC)",
    ),
    (
        {"timestamps": ["2024-01-05T04:00", "now", "a", "b", "c"]},
        "timestamps[1]",
        "timestamps[1] is 'now', which cannot be parsed as a timestamp",
    ),
    (
        {"timestamps": ["2024-01-05T04:00", 1704427200, "a", "b", "c"]},
        "timestamps[1]",
        "timestamps[1] is 1704427200, not a timestamp. Fix: send ISO-8601 timestamps",
    ),
    (
        {"timestamps": ["1600-01-01T00:00", "1600-01-01T01:00"], "values": [1.0, 2.0]},
        "timestamps[0]",
        "timestamps[0] (1600-01-01T00:00:00) is outside the supported range "
        "1900-01-01T00:00:00 .. 2200-01-01T00:00:00 UTC. Fix: send timestamps within that range",
    ),
    (
        {
            "timestamps": ["2199-12-31T23:00", "2200-01-01T00:00Z", "2200-01-01T02:00+01:00"],
            "values": [1.0, 2.0, 3.0],
        },
        "timestamps[2]",
        "timestamps[2] (2200-01-01T01:00:00) is outside the supported range",
    ),
    (
        {"timestamps": np.array(["2024-01-05T04", "NaT"], "datetime64[us]"), "values": [1.0, 2.0]},
        "timestamps[1]",
        "timestamps[1] is empty (NaT), not a timestamp",
    ),
    (
        {"values": "1,2,3,4,5"},
        "values",
        "values must be a flat list, got str. Fix: send a JSON array with one entry per "
        "observation",
    ),
    (
        {"timestamps": [], "values": []},
        "values",
        "values is empty: a batch needs at least one observation",
    ),
    ({"series_id": "other"}, "series_id", "series 'other' does not exist. Fix: create it first"),
    (
        {"timestamps": hours(100, 11), "values": np.ones(11)},
        "values",
        "values has 11 observations; the limit per request is 10. Fix: split the batch into "
        "parts of at most 10",
    ),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_BATCHES)
def test_bad_batches_are_rejected_with_nothing_written(
    store_url: str, change: dict[str, object], field: str, message: str
) -> None:
    with SeriesStore(store_url, max_batch=10) as small:
        small.upsert_series("load-a", frequency="h", target="y")
        small.upsert_observations("load-a", hours(0, 10), np.zeros(10))
        before = small.observations("load-a")
        args: dict[str, object] = {
            "series_id": "load-a",
            "timestamps": hours(100, 5),
            "values": [1.0, 2.0, 3.0, 4.0, 5.0],
            "covariates": None,
            **change,
        }
        with pytest.raises(StoreError, match=re.escape(message)) as caught:
            small.upsert_observations(**args)  # type: ignore[arg-type]
        assert caught.value.field == field
        after = small.observations("load-a")
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert after[2] == {}


def test_business_day_series_skip_holidays_but_not_into_weekends(store: SeriesStore) -> None:
    store.upsert_series("aapl", frequency="B", target="close")
    # Fri 2024-03-29 is a holiday: Thu then Mon is fine.
    days = ["2024-03-27", "2024-03-28", "2024-04-01", "2024-04-02"]
    assert store.upsert_observations("aapl", days, [1.0, 2.0, 3.0, 4.0]).inserted == 4
    with pytest.raises(
        StoreError,
        match=re.escape(
            "timestamps[1] (2024-04-06T00:00:00) is not a business day, and series 'aapl' has "
            "frequency 'B'. Fix: send Monday-Friday timestamps only"
        ),
    ):
        store.upsert_observations("aapl", ["2024-04-05", "2024-04-06"], [1.0, 2.0])
    assert store.get_series("aapl").count == 4


def test_an_exception_inside_the_transaction_leaves_nothing_half_written(
    hourly: SeriesStore,
) -> None:
    hourly.upsert_observations("load-a", hours(0, 10), np.zeros(10))
    before = hourly.observations("load-a")

    def crash_after_insert(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO OBSERVATIONS"):
            raise RuntimeError("injected crash after the observations insert")

    sa.event.listen(hourly.engine, "after_cursor_execute", crash_after_insert)
    try:
        with pytest.raises(RuntimeError, match="injected crash"):
            hourly.upsert_observations("load-a", hours(5, 20), np.ones(20), {"temp": np.ones(20)})
    finally:
        sa.event.remove(hourly.engine, "after_cursor_execute", crash_after_insert)
    after = hourly.observations("load-a")
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])  # the 5 overlapping rows kept 0.0
    assert after[2] == {}
    assert hourly.upsert_observations("load-a", hours(5, 20), np.ones(20)) == UpsertResult(15, 5)


# -- observations: concurrency ---------------------------------------------------------

WRITERS = 4
BATCHES = 6
BATCH = 30


def _writer_batches(writer: int) -> list[np.ndarray]:
    """Batches of its own (interleaved with the others') alternating with shared batches
    that every writer writes in the same order, so writers collide on the same rows."""
    own = [hours((b * WRITERS + writer) * BATCH, BATCH) for b in range(BATCHES)]
    shared = [hours((BATCHES * WRITERS + b) * BATCH, BATCH) for b in range(BATCHES)]
    return [batch for pair in zip(own, shared, strict=True) for batch in pair]


def _write_all(url: str, writer: int) -> tuple[int, int, int]:
    inserted = updated = 0
    with SeriesStore(url) as opened:
        for stamps in _writer_batches(writer):
            result = opened.upsert_observations("load-a", stamps, value_at(stamps))
            inserted += result.inserted
            updated += result.updated
    return inserted, updated, os.getpid()


def _check_nothing_lost(store: SeriesStore, results: list[tuple[int, int]]) -> None:
    expected = np.unique(np.concatenate([b for w in range(WRITERS) for b in _writer_batches(w)]))
    stamps, values, _ = store.observations("load-a")
    np.testing.assert_array_equal(stamps, expected.astype("datetime64[ns]"))
    np.testing.assert_array_equal(values, value_at(expected))
    assert sum(i for i, _ in results) == len(expected)
    assert sum(i + u for i, u in results) == WRITERS * 2 * BATCHES * BATCH


def test_concurrent_writer_threads_lose_nothing(hourly: SeriesStore) -> None:
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def run(writer: int) -> None:
        inserted = updated = 0
        try:
            for stamps in _writer_batches(writer):
                result = hourly.upsert_observations("load-a", stamps, value_at(stamps))
                inserted += result.inserted
                updated += result.updated
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        results.append((inserted, updated))

    threads = [threading.Thread(target=run, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _check_nothing_lost(hourly, results)


def test_concurrent_writer_processes_lose_nothing(
    hourly: SeriesStore, store_url: str, process_pool: Pool
) -> None:
    runs = process_pool.starmap(_write_all, [(store_url, w) for w in range(WRITERS)])
    assert len({pid for _, _, pid in runs}) > 1  # the writers really ran in parallel processes
    results = [(inserted, updated) for inserted, updated, _ in runs]
    _check_nothing_lost(hourly, results)


def test_the_ends_of_the_supported_range_are_stored_and_read_back(store: SeriesStore) -> None:
    store.upsert_series("long", frequency="D", target="y")
    early = np.array(["1900-01-01", "1900-01-02"], dtype="datetime64[D]")
    late = np.array(["2199-12-31", "2200-01-01"], dtype="datetime64[D]")
    assert store.upsert_observations("long", late, [3.0, 4.0]).inserted == 2
    assert store.upsert_observations("long", early, [1.0, 2.0]).inserted == 2
    stamps, values, _ = store.observations("long")
    np.testing.assert_array_equal(stamps, np.concatenate([early, late]).astype("datetime64[ns]"))
    np.testing.assert_array_equal(values, [1.0, 2.0, 3.0, 4.0])
    info = store.get_series("long")
    assert (info.first_timestamp, info.last_timestamp) == (
        datetime(1900, 1, 1),
        datetime(2200, 1, 1),
    )


# -- observations: reads --------------------------------------------------------------


def test_ranges_limits_and_latest(hourly: SeriesStore) -> None:
    stamps = hours(0, 24)
    hourly.upsert_observations("load-a", stamps, value_at(stamps))
    got, values, _ = hourly.observations(
        "load-a", start="2024-01-01T05:00", end=datetime(2024, 1, 1, 8)
    )
    np.testing.assert_array_equal(got, stamps[5:9].astype("datetime64[ns]"))
    np.testing.assert_array_equal(values, value_at(stamps[5:9]))
    got, _, _ = hourly.observations("load-a", start="2024-01-01T06:00+01:00", limit=2)
    np.testing.assert_array_equal(got, stamps[5:7].astype("datetime64[ns]"))
    got, values, _ = hourly.latest("load-a", 3)
    np.testing.assert_array_equal(got, stamps[-3:].astype("datetime64[ns]"))
    np.testing.assert_array_equal(values, value_at(stamps[-3:]))
    assert hourly.latest("load-a", 1000)[0].shape == (24,)
    assert hourly.observations("load-a", start="2025-01-01")[0].shape == (0,)
    with pytest.raises(
        StoreError,
        match=re.escape(
            "start 2024-01-02T00:00:00 is after end 2024-01-01T00:00:00. Fix: pass start <= end"
        ),
    ):
        hourly.observations("load-a", start="2024-01-02", end="2024-01-01")
    with pytest.raises(StoreError, match=re.escape("n must be a positive integer, got 0")):
        hourly.latest("load-a", 0)
    with pytest.raises(StoreError, match=re.escape("limit must be a positive integer, got -1")):
        hourly.observations("load-a", limit=-1)
    with pytest.raises(StoreError, match=re.escape("end is 'soon', which cannot be parsed")):
        hourly.observations("load-a", end="soon")
