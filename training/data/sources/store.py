"""Series from the SQL series store -> a validated SeriesFrame (`--source store --series ...`).

Observations arrive in batches over the API, so a stored series may have holes (a batch that
never came, an exchange holiday in a "B" series). Each series is reindexed to its regular
grid from its first to its last stored observation and the holes are filled by the policy of
`training.data.fill`, as for files ("interpolate" short gaps by default, "ffill" or "reject";
a fill that would invent more than `fill_limit` of a column is refused).

Every fill is recorded in the frame's `notes`.

Example:
    >>> store = SeriesStore.from_env()
    >>> frame = load_store(store, parse_series_ids("load-a,load-b"))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd

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
from training.store import SeriesInfo, SeriesStore, check_series_id

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
    fill: str = "interpolate",
    max_gap: int = DEFAULT_MAX_GAP,
    fill_limit: float = DEFAULT_FILL_LIMIT,
    names: OptionNames = KEYWORDS,
) -> SeriesFrame:
    """Read stored series into one validated long table.

    Args:
        store: an open series store.
        series_ids: ids of existing series, all at one frequency.
        covariates: stored covariates to carry along (each series must have them);
            () loads the target alone.
        start: first timestamp to read (inclusive), or None for each series' first.
        end: last timestamp to read (inclusive), or None for each series' last.
        fill: "interpolate", "ffill" or "reject" (see `training.data.fill`).
        max_gap: longest run of missing steps "interpolate" may fill.
        fill_limit: largest share of any column's values a fill may invent, in [0, 1].
        names: how messages spell fill/max_gap/fill_limit (keywords, CLI flags or
            experiment-file keys).

    Returns:
        A SeriesFrame with source "store:<ids>"; `target` is the series' common target
        name ("value" when they differ, noted).

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
    infos = [store.get_series(sid) for sid in ids]
    frequency = _common_frequency(infos)
    origin = Origin(
        where="series store",
        repair="ingest the missing observations",
        regrid="re-ingest the series with timestamps on one grid (business days at midnight "
        "for 'B')",
        refreq=f"check the series' stored frequency {frequency!r}",
    )
    notes = [f"read from the series store at {store.url}"]
    parts = []
    for info in sorted(infos, key=lambda item: item.id):
        stamps, values, stored = store.observations(info.id, start=start, end=end)
        if stamps.size == 0:
            span = "" if start is None and end is None else f" between {start} and {end}"
            raise DataError(
                f"store series {info.id!r} has no observations{span}. Fix: ingest "
                "some (POST /v1/series/{id}/observations or forecast load-series)"
            )
        missing = [name for name in covariates if name not in stored]
        if missing:
            available = ", ".join(sorted(stored)) or "none"
            raise DataError(
                f"store series {info.id!r} has no covariate {missing[0]!r}; "
                f"stored covariates: {available}"
            )
        columns = {"value": values, **{name: stored[name] for name in covariates}}  # [T] each
        table, filled = regularise(
            stamps,
            columns,
            series_id=info.id,
            freq=frequency,
            policy=policy,
            origin=origin,
            labels={"value": info.target},
        )
        table.insert(0, "series_id", info.id)
        parts.append(table)
        notes.extend(filled)
    targets = sorted({info.target for info in infos})
    target = targets[0] if len(targets) == 1 else "value"
    if len(targets) > 1:
        notes.append(f"series have different targets ({', '.join(targets)}); called 'value'")
    for note in notes:
        logger.info("store: %s", note)
    return SeriesFrame(
        table=pd.concat(parts, ignore_index=True),
        frequency=frequency,
        target=target,
        covariates=tuple(covariates),
        source="store:" + ",".join(ids),
        notes=tuple(notes),
    )


def _common_frequency(infos: list[SeriesInfo]) -> str:
    frequencies = {info.frequency for info in infos}
    if len(frequencies) > 1:
        listed = ", ".join(f"{info.id!r}: {info.frequency!r}" for info in infos)
        raise DataError(
            f"stored series have different frequencies ({listed}); one frame "
            "needs one frequency. Fix: train on series of the same frequency"
        )
    return infos[0].frequency
