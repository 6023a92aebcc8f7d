"""Series from the SQL series store -> a validated SeriesFrame (`--source store --series ...`).

Observations arrive in batches over the API, so a stored series may have holes (a batch that
never came, an exchange holiday in a "B" series). Each series is reindexed to its regular
grid from its first to its last stored observation and the holes are filled by the policy of
`training.data.fill`, as for files; every fill is recorded in the frame's `notes`.

Example:
    >>> store = SeriesStore.from_env()
    >>> frame = load_store(store, parse_series_ids("load-a,load-b"))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.features import parse_frequency
from training.data.fill import (
    DEFAULT_FILL_LIMIT,
    DEFAULT_MAX_GAP,
    KEYWORDS,
    FillPolicy,
    OptionNames,
    Origin,
    regularise,
)
from training.data.frame import SeriesFrame
from training.errors import DataError
from training.store import SeriesStore, check_series_id
from training.store.bulk import SeriesRows

logger = logging.getLogger(__name__)


def parse_series_ids(text: str) -> tuple[str, ...]:
    """Split a `--series a,b,c` flag into ids (blanks around commas are ignored).

    Raises:
        DataError: when the list is empty, repeats an id, or holds an invalid id.
    """
    ids = tuple(part.strip() for part in text.split(","))
    if not text.strip() or any(not part for part in ids):
        raise DataError(
            f"--series {text!r} has an empty id. Fix: list ids separated by "
            "commas, e.g. --series load-a,load-b"
        )
    for sid in ids:
        check_series_id(sid)
    return ids


def load_store(
    store: SeriesStore,
    series_ids: Sequence[str],
    *,
    covariates: Sequence[str] = (),
    start: Any = None,
    end: Any = None,
    last: int | None = None,
    fill: str = "interpolate",
    max_gap: int = DEFAULT_MAX_GAP,
    fill_limit: float = DEFAULT_FILL_LIMIT,
    names: OptionNames = KEYWORDS,
) -> SeriesFrame:
    """Read stored series into one validated long table.

    Args:
        series_ids: ids of existing series, all at one frequency.
        covariates: stored covariates to carry along (each series must have them);
            () loads the target alone.
        start: first timestamp to read (inclusive), or None for each series' first.
        end: last timestamp to read (inclusive), or None for each series' last.
        last: read only each series' newest `last` observations (what a forecast needs), or
            None for all of them.
        fill, max_gap, fill_limit, names: the fill policy, as for `load_file`.

    Returns:
        A frame with source "store:<ids>"; `target` is the series' common target name
        ("value" when they differ, noted).

    Raises:
        DataError: unknown or empty series, mixed frequencies, a missing covariate, or a
            fill above `fill_limit` or a hole the policy may not fill (the message names the
            series and the timestamp).
    """
    ids = list(series_ids)
    if not ids:
        raise DataError("series_ids is empty. Fix: name at least one stored series")
    if len(set(ids)) != len(ids):
        repeated = next(sid for sid in ids if ids.count(sid) > 1)
        raise DataError(f"series id {repeated!r} is listed twice. Fix: list each id once")
    policy = FillPolicy(fill, max_gap, fill_limit, names)
    data = store.read_many(sorted(ids), covariates=covariates, start=start, end=end, last=last)
    frequency = _common_frequency({sid: data.frequency[sid] for sid in ids})
    origin = Origin(
        where="series store",
        repair="ingest the missing observations",
        regrid="re-ingest the series with timestamps on one grid (business days at midnight "
        "for 'B')",
        refreq=f"check the series' stored frequency {frequency!r}",
    )
    notes = [f"read from the series store at {store.url}"]
    step = parse_frequency(frequency)
    regular = None if step.business else step.step.astype("timedelta64[ns]")
    filled_parts: dict[int, pd.DataFrame] = {}
    for i, sid in enumerate(data.ids):
        rows = data.rows(i)
        stamps = data.timestamps[rows]  # [T]
        if stamps.size == 0:
            span = "" if start is None and end is None else f" between {start} and {end}"
            raise DataError(
                f"store series {sid!r} has no observations{span}. Fix: ingest "
                "some (POST /v1/series/{id}/observations or forecast load-series)"
            )
        columns = {"value": data.values[rows], **{n: data.covariates[n][rows] for n in covariates}}
        missing = [n for n in covariates if np.isnan(columns[n]).all()]
        if missing:
            available = ", ".join(sorted(store.observations(sid, limit=1000)[2])) or "none"
            raise DataError(
                f"store series {sid!r} has no covariate {missing[0]!r}; "
                f"stored covariates: {available}"
            )
        if regular is not None and _on_grid(stamps, columns, regular):
            continue  # nothing to regrid or fill: taken from the flat arrays below
        table, filled = regularise(
            stamps, columns, series_id=sid, freq=frequency, policy=policy, origin=origin,
            labels={"value": data.target[sid]},
        )  # fmt: skip
        filled_parts[i] = table
        notes.extend(filled)
    targets = sorted(set(data.target.values()))
    target = targets[0] if len(targets) == 1 else "value"
    if len(targets) > 1:
        notes.append(f"series have different targets ({', '.join(targets)}); called 'value'")
    for note in notes:
        logger.info("store: %s", note)
    return SeriesFrame(
        table=_table(data, covariates, filled_parts),
        frequency=frequency,
        target=target,
        covariates=tuple(covariates),
        source="store:" + ",".join(ids),
        notes=tuple(notes),
    )


def _on_grid(stamps: np.ndarray, columns: dict[str, np.ndarray], step: np.timedelta64) -> bool:
    """Whether a series already lies on its grid with every cell filled."""
    if stamps.size > 1 and not (np.diff(stamps) == step).all():
        return False
    return all(not np.isnan(column).any() for column in columns.values())


def _table(
    data: SeriesRows, covariates: Sequence[str], filled: dict[int, pd.DataFrame]
) -> pd.DataFrame:
    """The long table: series on their grid taken as read, the regridded ones from `filled`."""
    counts = np.diff(data.bounds)  # [S]
    table = pd.DataFrame(
        {
            "series_id": np.repeat(np.asarray(data.ids, dtype=object), counts),
            "timestamp": data.timestamps,
            "value": data.values,
            **{name: data.covariates[name] for name in covariates},
        }
    )
    if not filled:
        return table
    parts = [filled.get(i, table.iloc[data.rows(i)]) for i in range(len(data.ids))]
    return pd.concat(parts, ignore_index=True)


def _common_frequency(frequency: dict[str, str]) -> str:
    """The one frequency of every series (id -> frequency, in the order asked for)."""
    if len(set(frequency.values())) > 1:
        listed = ", ".join(f"{sid!r}: {freq!r}" for sid, freq in frequency.items())
        raise DataError(
            f"stored series have different frequencies ({listed}); one frame "
            "needs one frequency. Fix: train on series of the same frequency"
        )
    return next(iter(frequency.values()))
