"""Series from the SQL series store -> a validated SeriesFrame (`--source store --series ...`).

Observations arrive in batches over the API, so a stored series may have holes (a batch that
never came, an exchange holiday in a "B" series). Each series is reindexed to its regular
grid from its first to its last stored observation and the holes are filled by an explicit
policy, as for files:

- "interpolate" (default): linear, but only runs of at most `max_gap` missing steps.
- "ffill": carry the last observation forward.
- "reject": any absent timestamp or missing covariate value is an error naming it.

Every fill is recorded in the frame's `notes`.

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

from training.errors import DataError
from training.data.frame import SeriesFrame, grid
from training.data.sources.files import DEFAULT_MAX_GAP, FILL_POLICIES
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
) -> SeriesFrame:
    """Read stored series into one validated long table.

    Args:
        store: an open series store.
        series_ids: ids of existing series, all at one frequency.
        covariates: stored covariates to carry along (each series must have them);
            () loads the target alone.
        start: first timestamp to read (inclusive), or None for each series' first.
        end: last timestamp to read (inclusive), or None for each series' last.
        fill: "interpolate", "ffill" or "reject" (see the module docstring).
        max_gap: longest run of missing steps "interpolate" may fill.

    Returns:
        A SeriesFrame with source "store:<ids>"; `target` is the series' common target
        name ("value" when they differ, noted).

    Raises:
        DataError: unknown or empty series, mixed frequencies, a missing covariate, or a
            hole the fill policy may not fill (the message names series and timestamp).
    """
    ids = list(series_ids)
    if not ids:
        raise DataError("series_ids is empty. Fix: name at least one stored series")
    if len(set(ids)) != len(ids):
        repeated = next(sid for sid in ids if ids.count(sid) > 1)
        raise DataError(f"series id {repeated!r} is listed twice. Fix: list each id once")
    if fill not in FILL_POLICIES:
        raise DataError(f"fill policy {fill!r} is unknown; use one of {', '.join(FILL_POLICIES)}")
    infos = [store.get_series(sid) for sid in ids]
    frequency = _common_frequency(infos)
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
        parts.append(_regularise(info, stamps, columns, fill, max_gap, notes))
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


def _regularise(
    info: SeriesInfo,
    stamps: np.ndarray,
    columns: dict[str, np.ndarray],
    fill: str,
    max_gap: int,
    notes: list[str],
) -> pd.DataFrame:
    """One series on its full grid, holes filled by `fill`; columns series_id, timestamp, ..."""
    full_grid = grid(pd.Timestamp(stamps[0]), pd.Timestamp(stamps[-1]), info.frequency)
    index = pd.DatetimeIndex(stamps)
    off = np.flatnonzero(~index.isin(full_grid))
    if off.size:
        raise DataError(
            f"store series {info.id!r}: timestamp {index[int(off[0])]} is not on the "
            f"{info.frequency!r} grid starting at {index[0]}. Fix: re-ingest the series "
            "with timestamps on one grid (business days at midnight for 'B')"
        )
    table = pd.DataFrame(columns, index=index).reindex(full_grid)  # [T_full, 1 + C]
    absent = len(full_grid) - len(index)
    for name in table.columns:
        holes = table[name].isna().to_numpy()  # [T_full]
        if not holes.any():
            continue
        label = info.target if name == "value" else name
        _check_holes(holes, full_grid, info.id, label, fill, max_gap)
        table[name] = (
            table[name].interpolate(method="linear")
            if fill == "interpolate"
            else table[name].ffill()
        )
        notes.append(
            f"series {info.id!r}: {int(holes.sum())} missing value(s) of {label!r} "
            f"filled by {fill} ({absent} absent timestamp(s))"
        )
    table = table.astype(np.float64).rename_axis("timestamp").reset_index()
    table["timestamp"] = table["timestamp"].astype("datetime64[ns]")
    table.insert(0, "series_id", info.id)
    return table


def _check_holes(
    holes: np.ndarray, stamps: pd.DatetimeIndex, sid: str, column: str, fill: str, max_gap: int
) -> None:
    """Raise DataError for the first run of holes the policy cannot fill."""
    padded = np.r_[False, holes, False].astype(np.int8)  # [T + 2]
    edges = np.flatnonzero(np.diff(padded))  # starts and ends of runs, alternating
    for begin, stop in zip(edges[::2], edges[1::2], strict=True):
        length = int(stop - begin)
        if fill == "reject":
            problem = "is missing and fill='reject'"
        elif begin == 0:
            problem = "starts the series, so nothing precedes it to fill from"
        elif fill == "interpolate" and stop == len(holes):
            problem = "ends the series, so it cannot be interpolated"
        elif fill == "interpolate" and length > max_gap:
            problem = f"begins a gap of {length} steps, longer than max_gap={max_gap}"
        else:
            continue
        raise DataError(
            f"store series {sid!r}: {column!r} at {stamps[int(begin)]} {problem}. Fix: ingest "
            "the missing observations, use fill='ffill', or raise max_gap"
        )
