"""Observations of stored series: the validated, all-or-nothing upsert (which also scores
logged forecasts of those timestamps), and reads by time range or of the latest values.

Functions take the store's `Engine` and run one transaction each; `SeriesStore`
(training.store.repository) is the façade that calls them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from training.store import validation
from training.store.engine import transaction
from training.store.forecast_log import score
from training.store.schema import between, observations, series
from training.store.series_info import dialect_insert, not_found, require
from training.store.timestamps import parse_range, parse_timestamps

Observations = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]
"""(timestamps [T] datetime64[ns] naive UTC, values [T] float64, covariates name -> [T] float64
with NaN where an observation lacks that covariate)."""


@dataclass(frozen=True)
class UpsertResult:
    """What one `upsert_observations` call did.

    Attributes:
        inserted: observations at timestamps the series did not have yet.
        updated: observations that replaced a stored value at the same timestamp.
    """

    inserted: int
    updated: int

    @property
    def total(self) -> int:
        """Observations in the batch (inserted + updated)."""
        return self.inserted + self.updated


def upsert(
    engine: Engine,
    series_id: str,
    timestamps: Sequence[Any] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    covariates: Mapping[str, Sequence[float] | np.ndarray] | None,
    max_batch: int,
) -> UpsertResult:
    """`SeriesStore.upsert_observations` (its docstring lists the rules and errors): validate
    the batch, then insert or replace it in one write transaction that also scores the logged
    forecasts of those timestamps."""
    validation.check_series_id(series_id)
    n = validation.batch_length(timestamps, values, covariates, max_batch)
    stamps = parse_timestamps(timestamps, "timestamps")  # [T] datetime64[us], in range
    vals = validation.finite_numbers(values, "values")  # [T]
    covs = {
        name: validation.finite_numbers(seq, f"covariates.{name}")
        for name, seq in (covariates or {}).items()
    }  # name -> [T]
    validation.check_increasing(stamps)
    stamp_list: list[datetime] = stamps.tolist()
    o = observations.c
    with transaction(engine, write=True) as conn:
        freq = conn.execute(
            sa.select(series.c.frequency).where(series.c.id == series_id).with_for_update()
        ).scalar_one_or_none()
        if freq is None:
            raise not_found(series_id)
        validation.check_frequency_steps(stamps, freq, series_id)
        first = conn.execute(sa.select(sa.func.min(o.ts)).where(o.series_id == series_id)).scalar()
        validation.check_grid(stamps, first, freq, series_id)
        query = sa.select(o.ts).where(o.series_id == series_id)
        existing = conn.execute(between(query, o.ts, stamp_list[0], stamp_list[-1])).scalars().all()
        updated = len(set(existing).intersection(stamp_list))
        rows = _rows(series_id, stamp_list, vals, covs)
        conn.execute(_upsert_statement(conn), rows)
        # Logged forecasts of these timestamps are scored in the same transaction.
        score(conn, series_id, stamp_list, vals)
    return UpsertResult(inserted=n - updated, updated=updated)


def read(engine: Engine, series_id: str, start: Any, end: Any, limit: int | None) -> Observations:
    """`SeriesStore.observations`: stored observations in time order within [start, end]
    (inclusive, None = open), the earliest `limit` of them (None for all)."""
    lo, hi = parse_range(start, end)
    if limit is not None:
        limit = validation.check_positive(limit, "limit")
    o = observations.c
    query = sa.select(o.ts, o.value, o.covariates).where(o.series_id == series_id)
    query = between(query, o.ts, lo, hi).order_by(o.ts.asc()).limit(limit)
    with transaction(engine, write=False) as conn:
        require(conn, series_id)
        rows = conn.execute(query).all()
    return _arrays(rows)


def latest(engine: Engine, series_id: str, n: int) -> Observations:
    """`SeriesStore.latest`: the last `n` observations (fewer if the series is shorter)."""
    n = validation.check_positive(n, "n")
    o = observations.c
    query = sa.select(o.ts, o.value, o.covariates).where(o.series_id == series_id)
    with transaction(engine, write=False) as conn:
        require(conn, series_id)
        rows = conn.execute(query.order_by(o.ts.desc()).limit(n)).all()
    return _arrays(rows[::-1])


def _upsert_statement(conn: Connection) -> Any:
    insert = dialect_insert(conn, observations)
    return insert.on_conflict_do_update(
        index_elements=[observations.c.series_id, observations.c.ts],
        set_={
            "value": insert.excluded.value,
            # Covariates omitted from a batch keep the stored ones.
            "covariates": sa.func.coalesce(insert.excluded.covariates, observations.c.covariates),
        },
    )


def _rows(
    series_id: str, stamps: list[datetime], values: np.ndarray, covariates: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """Parameter dicts for the executemany upsert, one per observation."""
    cov_text: list[str | None] = [None] * len(stamps)
    if covariates:
        columns = {name: column.tolist() for name, column in covariates.items()}  # C x [T]
        cov_text = [
            json.dumps({name: column[i] for name, column in columns.items()})
            for i in range(len(stamps))
        ]
    return [
        {"series_id": series_id, "ts": ts, "value": value, "covariates": text}
        for ts, value, text in zip(stamps, values.tolist(), cov_text, strict=True)
    ]


def _arrays(rows: Sequence[Any]) -> Observations:
    """Rows of (ts, value, covariates JSON) -> the arrays `observations()` returns."""
    stamps = np.array([row.ts for row in rows], dtype="datetime64[us]")  # [T]
    values = np.array([row.value for row in rows], dtype=np.float64)  # [T]
    parsed = [json.loads(row.covariates) if row.covariates else {} for row in rows]
    names = sorted({name for item in parsed for name in item})
    covariates = {
        name: np.array([item.get(name, np.nan) for item in parsed], dtype=np.float64)  # [T]
        for name in names
    }
    return stamps.astype("datetime64[ns]"), values, covariates
