"""The forecast log: forecasts made from stored history, kept and scored as actuals arrive.

Each logged forecast is one `forecast_log` row identified by (model, version, series, origin),
the origin being the timestamp of the last observation it was made from, its arrays packed
as bytes (`training.store.forecast_rows`). Logging the same forecast again replaces it whole,
so a batch re-run, or a client asking twice, never counts twice.

Scoring happens in the transaction that brings the actuals: when observations of a series
are written (`SeriesStore.upsert_observations`), every logged forecast of that series whose
steps overlap the written range takes the observed values into its `actual` array; a
forecast logged after its actuals arrived is scored as it is logged. Both lock the series row
first, so on PostgreSQL neither can miss the other's rows. Re-sent observations re-score.

The figures (MAE, RMSE, MASE against seasonal naive, coverage and width) are computed from
the scored steps by `training.store.live_scores`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from training.store.engine import transaction
from training.store.forecast_rows import (
    ForecastRecord,
    LoggedForecast,
    filled,
    forecast_row,
    logged,
    scored_steps,
)
from training.store.live_scores import VersionScores, naive_reference
from training.store.schema import between, forecast_log, observations, series, utc_now
from training.store.timestamps import parse_range

__all__ = [
    "ForecastLog",
    "ForecastRecord",
    "LoggedForecast",
    "VersionScores",
    "forecast_row",
    "naive_reference",
    "parse_window",
    "score",
]


class ForecastLog:
    """The forecast log of one series store database.

    Args:
        engine: the store's engine (tables already migrated).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, records: Iterable[ForecastRecord]) -> int:
        """Log forecasts (replacing any logged with the same model, version, series and
        origin) and score them against the observations already stored; returns how many
        were written.

        Raises:
            StoreError: a record whose arrays disagree in length or hold non-finite values.
        """
        now = utc_now()
        return self.write_rows([forecast_row(record, now) for record in records])

    def write_rows(self, prepared: Iterable[dict[str, Any]]) -> int:
        """`record` for rows already built by `forecast_row` (the service builds them on the
        request path, so its writer thread only runs SQL); returns how many were written."""
        # the last of repeated keys wins, as it would in sequence
        rows = {tuple(row[name] for name in _KEY): row for row in prepared}
        if not rows:
            return 0
        by_series: dict[str, list[dict[str, Any]]] = {}
        for row in rows.values():
            by_series.setdefault(row["series_id"], []).append(row)
        with transaction(self._engine, write=True) as conn:
            # Ingestion locks the series row before it writes and scores; so does this, so
            # that one of two concurrent transactions always sees the other's rows. Sorted,
            # so two writers never lock in opposite orders.
            conn.execute(
                sa.select(series.c.id).where(series.c.id.in_(sorted(by_series)))
                .order_by(series.c.id).with_for_update()
            )  # fmt: skip
            newest = _newest_observations(conn, sorted(by_series))
            for series_id, logged in by_series.items():
                last = newest.get(series_id)
                if last is not None and last >= min(row["first_ts"] for row in logged):
                    _score_new(conn, series_id, logged)  # some actuals are in already
            _upsert(conn, list(rows.values()))
        return len(rows)

    def scores(
        self,
        *,
        model: str | None = None,
        version: str | None = None,
        series_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        last: int | None = None,
    ) -> list[VersionScores]:
        """Live accuracy per (model, version), over forecasts with origin in [since, until].

        Args:
            model, version, series_id: restrict to these (None: all).
            since, until: naive UTC bounds on the forecast origin (inclusive).
            last: keep only the latest `last` scored forecasts of each version (by origin).

        Returns:
            One entry per model version with scored steps, ordered by model, then version.
        """
        f = forecast_log.c
        query = sa.select(
            f.model, f.version, f.series_id, f.origin, f.mean, f.naive, f.levels, f.lower,
            f.upper, f.actual,
        ).where(f.scored > 0)  # fmt: skip
        query = _filtered(query, model, version, series_id, since, until)
        with transaction(self._engine, write=False) as conn:
            rows = conn.execute(query.order_by(f.origin, f.series_id)).all()
        groups: dict[tuple[str, str], list[Any]] = {}
        for row in rows:
            groups.setdefault((row.model, row.version), []).append(row)
        return [
            scored_steps(groups[key][-last:] if last else groups[key]).version_scores(
                key[0], key[1], since, until
            )
            for key in sorted(groups, key=lambda k: (k[0], _version_order(k[1])))
        ]

    def forecasts(
        self,
        series_id: str,
        *,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 20,
    ) -> list[LoggedForecast]:
        """The latest `limit` forecasts of a series (origin in [since, until]), newest first."""
        f = forecast_log.c
        query = _filtered(sa.select(forecast_log), model, None, series_id, since, until)
        query = query.order_by(f.origin.desc(), f.model, f.version).limit(limit)
        with transaction(self._engine, write=False) as conn:
            rows = conn.execute(query).all()
        return [logged(row) for row in rows]


def score(conn: Connection, series_id: str, stamps: Sequence[datetime], values: np.ndarray) -> None:
    """Put freshly written observations into the logged forecasts of `series_id` they cover.

    Args:
        conn: the transaction that wrote them (it holds the series row's lock).
        stamps: [T] naive UTC timestamps, increasing.
        values: [T] the observed values.
    """
    f = forecast_log.c
    rows = conn.execute(
        sa.select(f.model, f.version, f.series_id, f.origin, f.stamps, f.actual).where(
            f.series_id == series_id, f.last_ts >= stamps[0], f.first_ts <= stamps[-1]
        )
    ).all()
    if not rows:
        return
    observed = np.array(stamps, dtype="datetime64[us]").astype(np.int64)  # [T]
    updates = []
    for row in rows:  # row[:4] is its key
        new = filled(row.actual, row.stamps, observed, values)
        if new is not None:
            key = {f"k_{name}": value for name, value in zip(_KEY, row[:4], strict=True)}
            updates.append({**key, "new_actual": new[0], "new_scored": new[1]})
    if updates:
        conn.execute(_UPDATE_ACTUAL, updates)


def parse_window(
    since: str | datetime | None, until: str | datetime | None
) -> tuple[datetime | None, datetime | None]:
    """`since` and `until` as naive UTC datetimes, checked in order.

    Raises:
        StoreError: unparseable, or since after until (field "since").
    """
    return parse_range(since, until, ("since", "until"))


# -- rows ------------------------------------------------------------------------------------

_KEY = ("model", "version", "series_id", "origin")
_DATETIMES = frozenset(c.name for c in forecast_log.columns if isinstance(c.type, sa.DateTime))
_UPDATE_ACTUAL = (
    sa.update(forecast_log)
    .where(*(forecast_log.c[name] == sa.bindparam(f"k_{name}") for name in _KEY))
    .values(actual=sa.bindparam("new_actual"), scored=sa.bindparam("new_scored"))
)


def _newest_observations(conn: Connection, series_ids: list[str]) -> dict[str, datetime]:
    """series id -> its latest observation time, for the ids that have any (one indexed
    query per 500 ids): a batch of fresh forecasts usually has no actuals to score yet, and
    asking once beats asking 10,000 times."""
    o = observations.c
    newest: dict[str, datetime] = {}
    for i in range(0, len(series_ids), 500):
        query = (
            sa.select(o.series_id, sa.func.max(o.ts))
            .where(o.series_id.in_(series_ids[i : i + 500]))
            .group_by(o.series_id)
        )
        newest.update(conn.execute(query).all())
    return newest


def _score_new(conn: Connection, series_id: str, rows: list[dict[str, Any]]) -> None:
    """Fill the `actual` of new rows from the observations stored already (one query)."""
    first = min(row["first_ts"] for row in rows)
    last = max(row["last_ts"] for row in rows)
    o = observations.c
    found = conn.execute(
        sa.select(o.ts, o.value)
        .where(o.series_id == series_id, o.ts >= first, o.ts <= last)
        .order_by(o.ts)
    ).all()
    if not found:
        return
    observed = np.array([r.ts for r in found], dtype="datetime64[us]").astype(np.int64)  # [T]
    values = np.array([r.value for r in found], dtype=np.float64)  # [T]
    for row in rows:
        new = filled(row["actual"], row["stamps"], observed, values)
        if new is not None:
            row["actual"], row["scored"] = new


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert `rows`, replacing rows of the same key, by the driver's executemany.

    Plain SQL both SQLite and PostgreSQL take: through SQLAlchemy's insert, its per-value
    bind processing cost ~20 us a row, more than the SQL itself (the service's forecast log
    writer writes every forecast served). Bytes go to the driver as they are; datetimes as
    SQLAlchemy stores them (text on SQLite, so that they compare with what it wrote).
    """
    names = [c.name for c in forecast_log.columns]
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {quote(forecast_log.name)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join([mark] * len(names))}) "
        f"ON CONFLICT ({', '.join(quote(n) for n in _KEY)}) DO UPDATE SET "
        + ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in names if n not in _KEY)
    )
    params = [[row[n] for n in names] for row in rows]
    if conn.dialect.name == "sqlite":
        for i in [i for i, n in enumerate(names) if n in _DATETIMES]:
            for values in params:
                values[i] = values[i].isoformat(" ", "microseconds")
    conn.exec_driver_sql(sql, [tuple(values) for values in params])


def _filtered(
    query: Any,
    model: str | None,
    version: str | None,
    series_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Any:
    f = forecast_log.c
    for column, value in ((f.model, model), (f.version, version), (f.series_id, series_id)):
        if value is not None:
            query = query.where(column == value)
    return between(query, f.origin, since, until)


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)
