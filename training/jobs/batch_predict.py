"""`predict_batch`: forecasts of many series from one registered model version, as one table.

The version is the one an alias points at (`champion`, what the service serves) or a number.
Its forecaster directory is downloaded once; the series' newest `lookback` rows are cut into
shards of `shard_size` series (sorted by id), and every shard is forecast with
`pyfunc_model.forecast_frame`, the same code the logged MLflow model runs. In-process by
default; on a Ray cluster the shards go to one actor per CPU (at most one per shard), each
of which loads the model once. Both paths forecast the same shards with the same code, so
they give the same rows.

A model with future covariates (weather forecasts, holidays) also reads each series' known
values over the horizon: the `ahead` table that `training.jobs.predict_future` builds from a
`--data` file or a `--future` file.

Output: one row per series and step: model_name, model_version, series_id, origin (the last
observed timestamp), step (1..H), timestamp, mean, lower_<level> / upper_<level>; written to
Parquet, and/or (`record_to_store`) into the series store's forecast log, where the forecasts
are scored for live accuracy as the actuals are ingested.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.data.frame import SeriesFrame
from training.errors import DataError, ExperimentError, TrackingError
from training.jobs.cluster import ClusterInfo, ray_session, resolve_address
from training.registry.tracking import Tracker

DEFAULT_SHARD_SIZE = 1000


@dataclass(frozen=True)
class ModelRef:
    """The registered version to forecast with, and its saved files (name -> bytes)."""

    name: str
    version: int
    files: dict[str, bytes]


def resolve_model(
    tracker: Tracker, name: str, version: int | None = None, alias: str = "champion"
) -> ModelRef:
    """Download `version` of `name`, or the version `alias` points at.

    Raises:
        TrackingError: an unknown model, version or alias (naming the fix).
    """
    if version is None:
        aliases = tracker.aliases(name)
        if alias not in aliases:
            known = ", ".join(f"{a} -> v{v}" for a, v in sorted(aliases.items())) or "none"
            raise TrackingError(
                f"registered model {name!r} has no alias {alias!r} (aliases: {known}). Fix: "
                f"train one with `forecast train --name {name}`, or pass --version N"
            )
        version = aliases[alias]
    tracker.version(name, version)  # raises for an unknown version, listing the known ones
    with tempfile.TemporaryDirectory(prefix="forecast-predict-") as tmp:
        directory = tracker.download_forecaster(name, version, Path(tmp))
        files = {f.name: f.read_bytes() for f in directory.iterdir() if f.is_file()}
    return ModelRef(name, version, files)


def load_forecaster(files: Mapping[str, bytes]) -> Any:
    """A forecaster from its saved files, through the safe loader (models.io.load)."""
    from models import io as models_io

    with tempfile.TemporaryDirectory(prefix="forecaster-") as tmp:
        for filename, payload in files.items():
            (Path(tmp) / filename).write_bytes(payload)
        return models_io.load(Path(tmp), device="cpu")


def forecast_shard(
    forecaster: Any, table: pd.DataFrame, horizon: int, levels: Sequence[int]
) -> pd.DataFrame:
    """Forecasts of every series of `table` (long: series_id, timestamp, value, covariates),
    with each series' origin (its last timestamp)."""
    from training.registry.pyfunc_model import forecast_frame

    out = forecast_frame(forecaster, table, {"horizon": horizon, "levels": list(levels)})
    observed = table[table["value"].notna()]  # not the horizon's rows of future covariates
    origins = observed.groupby("series_id", sort=False)["timestamp"].max()
    out.insert(1, "origin", out["series_id"].map(origins).astype("datetime64[ns]"))
    return out


class ShardWorker:
    """A Ray actor (one per CPU): loads the model once, then forecasts shard after shard."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        import torch

        torch.set_num_threads(1)
        self.forecaster = load_forecaster(files)

    def forecast(self, table: pd.DataFrame, horizon: int, levels: Sequence[int]) -> pd.DataFrame:
        """`forecast_shard` with the loaded model."""
        return forecast_shard(self.forecaster, table, horizon, levels)


def shards(
    frame: SeriesFrame, lookback: int, shard_size: int, ahead: pd.DataFrame | None = None
) -> list[pd.DataFrame]:
    """The newest `lookback` rows of each series, then its `ahead` rows (empty value, the
    horizon's future covariates) when given, in shards of `shard_size` series by id."""
    if shard_size < 1:
        raise ExperimentError(f"--shard-size {shard_size}: must be >= 1. Fix: e.g. 1000")
    table = frame.table.sort_values(["series_id", "timestamp"], kind="stable")
    table = table.groupby("series_id", sort=False).tail(lookback)
    if ahead is not None:
        table = pd.concat([table, ahead], ignore_index=True)
        table = table.sort_values(["series_id", "timestamp"], kind="stable")
    # the table is sorted by series: shard k is one contiguous run of rows
    codes, ids = pd.factorize(table["series_id"], sort=True)  # [R] rising, [S]
    edges = np.searchsorted(codes, np.arange(0, len(ids) + shard_size, shard_size))
    return [table.iloc[a:b].reset_index(drop=True) for a, b in pairwise(edges) if b > a]


@dataclass(frozen=True)
class BatchResult:
    """The forecasts and where they came from."""

    forecasts: pd.DataFrame
    model: str
    version: int
    series: int
    shards: int
    seconds: float
    cluster: ClusterInfo | None


def predict_batch(
    ref: ModelRef,
    frame: SeriesFrame,
    *,
    horizon: int | None = None,
    levels: Sequence[int] = (80, 95),
    ray_address: str | None = None,
    use_ray: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    ahead: pd.DataFrame | None = None,
) -> BatchResult:
    """Forecast every series of `frame` with `ref` (see the module docstring).

    Args:
        ref: from `resolve_model`.
        frame: the series (at the model's frequency, with its covariates).
        horizon: steps; None: the model's max_horizon.
        levels: interval levels in percent.
        ray_address: a Ray cluster to shard over (None with `use_ray`: $RAY_ADDRESS or a
            local Ray); None without `use_ray`: in this process.
        use_ray: shard over Ray even without an address.
        shard_size: series per shard.
        ahead: for a model with future covariates, each series' rows over the horizon
            (`predict_future.load_data_file`, `read_future`); None for any other model.

    Raises:
        DataError: the data's frequency differs from the model's; ExperimentError: a model
            with future covariates without `ahead`; ForecastInputError: a series shorter
            than the look-back or a missing covariate.
    """
    started = time.perf_counter()
    forecaster = load_forecaster(ref.files)
    meta = forecaster.meta
    check_frequency(frame, meta, f"{ref.name} v{ref.version}")
    steps = forecast_steps(meta, horizon)
    if meta.future_covariates and ahead is None:
        raise ExperimentError(
            f"model {ref.name!r} version {ref.version} reads the future covariates "
            f"{list(meta.future_covariates)} over the horizon. Fix: pass `ahead` "
            "(load_data_file, read_future)"
        )
    parts = shards(frame, meta.lookback, shard_size, ahead)
    cluster = None
    if ray_address is None and not use_ray:
        outs = [forecast_shard(forecaster, part, steps, levels) for part in parts]
    else:
        with ray_session(ray_address) as cluster:
            outs = _on_ray(ref, parts, steps, levels, cluster.cpus)
    table = pd.concat(outs, ignore_index=True)
    table.insert(0, "model_version", ref.version)
    table.insert(0, "model_name", ref.name)
    return BatchResult(
        forecasts=table, model=ref.name, version=ref.version, series=frame.n_series,
        shards=len(parts), seconds=time.perf_counter() - started, cluster=cluster,
    )  # fmt: skip


def _on_ray(
    ref: ModelRef, parts: list[pd.DataFrame], horizon: int, levels: Sequence[int], cpus: float
) -> list[pd.DataFrame]:
    """Forecast `parts` on one actor per CPU (at most one per part), in order."""
    import ray
    from ray.util import ActorPool

    files = ray.put(ref.files)
    workers = max(1, min(len(parts), int(cpus)))
    actor = ray.remote(num_cpus=1)(ShardWorker)
    pool = ActorPool([actor.remote(files) for _ in range(workers)])  # type: ignore[attr-defined]
    levels = list(levels)
    return list(pool.map(lambda a, part: a.forecast.remote(part, horizon, levels), parts))


def write_parquet(table: pd.DataFrame, path: Path) -> Path:
    """Write the forecasts to `path` (a .parquet file; its folder is created).

    Raises:
        ExperimentError: when `path` does not end in .parquet.
    """
    if path.suffix != ".parquet":
        raise ExperimentError(
            f"--output {str(path)!r}: must end in .parquet. Fix: e.g. out.parquet"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, index=False)
    return path


def history_rows(meta: Any) -> int:
    """How many of each stored series' newest rows a batch forecast reads: the look-back, and
    at least one season for the seasonal-naive reference that live MASE divides by."""
    from models.features import season_length

    return max(int(meta.lookback), season_length(meta.frequency))


def store_frame(
    database_url: str | None,
    series_ids: Sequence[str] | None,
    covariates: Sequence[str],
    *,
    last: int | None = None,
) -> SeriesFrame:
    """Stored series (`series_ids`, or every stored series for None) as a SeriesFrame; with
    `last`, only each series' newest `last` observations (see `history_rows`).

    Raises:
        DataError: an empty store, unknown ids, or series the store cannot serve as one frame.
    """
    import sqlalchemy as sa

    from training.data.sources.store import load_store
    from training.store import SeriesStore
    from training.store.schema import series

    with SeriesStore(database_url) if database_url else SeriesStore.from_env() as store:
        ids = list(series_ids or ())
        if not ids:
            with store.engine.connect() as conn:
                ids = list(conn.execute(sa.select(series.c.id).order_by(series.c.id)).scalars())
        if not ids:
            raise DataError(
                f"the series store at {store.url} holds no series. Fix: load some with "
                "`forecast load-series`, or pass --data FILE"
            )
        return load_store(store, ids, covariates=covariates, last=last)


def record_to_store(
    result: BatchResult, frame: SeriesFrame, database_url: str | None, levels: Sequence[int]
) -> int:
    """Write the forecasts into the series store's forecast log, where they are scored as the
    series' actuals are ingested (idempotent per model version, series and origin).

    Returns:
        How many forecasts (series) were written.
    """
    from training.jobs.forecast_records import forecast_records
    from training.store import SeriesStore

    records = forecast_records(
        result.forecasts, frame, model=result.model, version=result.version, levels=levels
    )
    with SeriesStore(database_url) if database_url else SeriesStore.from_env() as store:
        return store.forecast_log.record(records)


def predict_to_store(
    name: str,
    *,
    tracking_uri: str | None,
    database_url: str | None,
    series_ids: Sequence[str] = (),
    horizon: int | None = None,
    levels: Sequence[int] = (80, 95),
) -> dict[str, Any]:
    """Forecast stored series with `name`'s champion and record them in the forecast log: the
    scheduled batch forecast (`task = "predict"` jobs of configs/schedule.toml).

    Args:
        series_ids: the stored series to forecast; empty: every stored series.
        horizon: steps; None: the model's max_horizon.

    With $RAY_ADDRESS set the series are sharded over that cluster; else they are forecast in
    this process.

    Returns:
        JSON-ready summary: model, version, series, recorded, seconds.
    """
    ref = resolve_model(Tracker(tracking_uri), name)
    meta = load_forecaster(ref.files).meta
    if meta.future_covariates:
        raise ExperimentError(
            f"model {ref.name!r} version {ref.version} reads the future covariates "
            f"{list(meta.future_covariates)} over the horizon, and the store holds only the "
            "past. Fix: forecast it with `forecast predict NAME --series ID --future FILE "
            "--to-store` or POST /v1/series/{id}/forecast with future_covariates, or schedule "
            "a model trained without future covariates"
        )
    covariates = meta.covariates
    frame = store_frame(database_url, list(series_ids) or None, covariates, last=history_rows(meta))
    address = resolve_address(None)
    result = predict_batch(ref, frame, horizon=horizon, levels=levels, ray_address=address)
    recorded = record_to_store(result, frame, database_url, levels)
    return {
        "model": ref.name,
        "version": ref.version,
        "series": result.series,
        "recorded": recorded,
        "seconds": round(result.seconds, 3),
    }


# ---- the horizon's future covariates -----------------------------------------------------------


def check_frequency(frame: SeriesFrame, meta: Any, model: str) -> None:
    """Refuse series at another frequency than the model's (`model`: "name vN").

    Raises:
        DataError: naming both frequencies and the fix.
    """
    if frame.frequency != meta.frequency:
        raise DataError(
            f"the data's frequency {frame.frequency!r} differs from {model}'s "
            f"{meta.frequency!r}. Fix: pass series at frequency {meta.frequency!r}"
        )


def forecast_steps(meta: Any, horizon: int | None) -> int:
    """The steps to forecast: `horizon`, or the model's max_horizon for None.

    Raises:
        ExperimentError: a horizon below 1.
    """
    steps = int(horizon or meta.max_horizon)
    if steps < 1:
        raise ExperimentError(f"--horizon {steps}: must be >= 1. Fix: e.g. --horizon 24")
    return steps
