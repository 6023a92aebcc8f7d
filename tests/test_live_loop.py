"""The live-accuracy loop end to end on PostgreSQL: seed a stored series, train, serve, forecast
from the store again and again while the actuals are ingested, read /performance (checked
against figures computed here from the responses), let the series change its pattern so that
live MASE crosses the drift threshold, and see the drift job retrain and the service switch to
the new champion.

Real pieces throughout: a fresh PostgreSQL database for the series store, forecast log and
scheduler state; a SQLite MLflow store; the app through TestClient; the scheduler's real
retraining cycle (only its clock is injected, so the every-minute cron is due at once).
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.main import create_app
from service.settings import ServiceSettings
from service.store_deps import StoreHandle, StoreSettings
from training.data.catalogue import load_dataset
from training.jobs.experiment import TrainSpec
from training.jobs.pipeline import train
from training.jobs.preparation import load_frame
from training.registry.tracking import Tracker
from training.retraining.retrain import retrain
from training.retraining.schedule import Job
from training.retraining.scheduler import Scheduler
from training.retraining.triggers import reference_mase
from training.store import SeriesStore

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

MODEL = "live-loop"
SERIES = "etth1-live"
READ = {"X-API-Key": "read"}
ADMIN = {"X-API-Key": "admin"}
SEED, NORMAL, DRIFTED, STEP = 480, 24, 48, 4  # rows seeded, then ingested STEP at a time


def _data() -> tuple[list[datetime], np.ndarray]:
    """ETTh1's last SEED + NORMAL hours, then DRIFTED hours of another level and period."""
    table = load_dataset("load/etth1").table.tail(SEED + NORMAL)
    stamps = [t.to_pydatetime() for t in table["timestamp"]]
    values = table["value"].to_numpy(dtype=np.float64)
    rng = np.random.default_rng(7)
    t = np.arange(DRIFTED)
    shifted = values[-1] + 8 + 4 * np.sin(2 * np.pi * t / 12) + 0.5 * rng.standard_normal(DRIFTED)
    stamps += [stamps[-1] + timedelta(hours=int(i) + 1) for i in t]
    return stamps, np.concatenate([values, shifted])


def _iso(stamps: list[datetime]) -> list[str]:
    return [s.isoformat() for s in stamps]


def _forecast_and_ingest(
    api: TestClient, stamps: list[datetime], values: np.ndarray, start: int, rounds: int
) -> list[tuple[int, dict[str, Any]]]:
    """Forecast STEP hours from the store, then ingest those STEP actuals; `rounds` times.

    Returns:
        (origin index, response body) per forecast.
    """
    made = []
    for r in range(rounds):
        end = start + r * STEP  # rows [0, end) are stored
        answer = api.post(
            f"/v1/series/{SERIES}/forecast", headers=READ, json={"model": MODEL, "horizon": STEP}
        )
        assert answer.status_code == 200, answer.text
        made.append((end - 1, answer.json()))
        ingested = api.post(
            f"/v1/series/{SERIES}/observations",
            headers=ADMIN,
            json={"timestamps": _iso(stamps[end : end + STEP]),
                  "values": values[end : end + STEP].tolist()},
        )  # fmt: skip
        assert ingested.status_code == 200, ingested.text
    return made


def _expected(made: list[tuple[int, dict[str, Any]]], values: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, MASE (vs a day-back seasonal naive) and 80% coverage, computed here."""
    actual, mean, naive, lower, upper = [], [], [], [], []
    for origin, body in made:
        steps = np.arange(1, STEP + 1)
        actual.append(values[origin + steps])
        mean.append(body["mean"])
        naive.append(values[origin + 1 - 24 + (steps - 1) % 24])
        lower.append(body["intervals"]["80"]["lower"])
        upper.append(body["intervals"]["80"]["upper"])
    a, m, n = np.concatenate(actual), np.concatenate(mean), np.concatenate(naive)
    lo, hi = np.concatenate(lower), np.concatenate(upper)
    return {
        "mae": float(np.abs(a - m).mean()),
        "rmse": float(np.sqrt(((a - m) ** 2).mean())),
        "mase": float(np.abs(a - m).sum() / np.abs(a - n).sum()),
        "coverage": float(((a >= lo) & (a <= hi)).mean()),
    }


def _scored(api: TestClient, points: int) -> dict[str, Any]:
    """GET /performance once `points` steps are scored (the log is written off the request
    path, a fraction of a second later)."""
    deadline = time.monotonic() + 15
    while True:
        read: dict[str, Any] = api.get(f"/v1/models/{MODEL}/performance", headers=READ).json()
        done = read["versions"] and read["versions"][0]["points"] == points
        if done or time.monotonic() > deadline:
            return read
        time.sleep(0.05)


def _served(api: TestClient) -> str:
    answer = api.get(f"/v1/models/{MODEL}", headers=READ)
    assert answer.status_code == 200, answer.text
    version: str = answer.json()["version"]
    return version


def test_forecasts_are_scored_and_drift_retrains_and_the_service_switches(
    fresh_postgres_database: str, tmp_path: Path
) -> None:
    store_url, uri = fresh_postgres_database, f"sqlite:///{tmp_path}/mlflow.db"
    stamps, values = _data()
    with SeriesStore(store_url) as store:
        store.upsert_series(SERIES, frequency="h", target="OT")
        store.upsert_observations(SERIES, stamps[:SEED], values[:SEED])
    spec = TrainSpec(
        family="esn", horizon=STEP, series=(SERIES,), lookback=48, device="cpu", name=MODEL,
        model={"reservoir_size": 100},
    )  # fmt: skip
    first = train(spec, uri, frame=load_frame(spec, store_url), allow_worse_than_baseline=True)
    assert first.champion_version == 1

    settings = ServiceSettings(
        tracking_uri=uri, models=(MODEL,), api_keys=("read",), admin_keys=("admin",),
        poll_seconds=3600.0, startup_wait_seconds=60.0,
    )  # fmt: skip
    app = create_app(settings)
    app.state.series_store = StoreHandle(
        StoreSettings(database_url=SecretStr(store_url), live_refresh_seconds=0.2)
    )
    with TestClient(app) as api:
        assert _served(api) == "1"
        # --- the usual pattern: forecasts scored as their actuals arrive ---------------
        normal = _forecast_and_ingest(api, stamps, values, SEED, NORMAL // STEP)
        wanted = _expected(normal, values)
        [live] = _scored(api, NORMAL)["versions"]
        assert (live["version"], live["forecasts"], live["points"]) == ("1", NORMAL // STEP, NORMAL)
        for key in ("mae", "rmse", "mase"):
            assert live["overall"][key] == pytest.approx(wanted[key], rel=1e-6), key
        assert live["overall"]["coverage"]["80"] == pytest.approx(wanted["coverage"])
        per_series = api.get(f"/v1/series/{SERIES}/performance", headers=READ).json()
        assert per_series["models"][0]["overall"] == live["overall"]

        # --- a drift job: quiet while live MASE holds ------------------------------------
        tracker = Tracker(uri)
        reference = reference_mase(tracker.run_data(first.run_id).metrics)
        assert reference is not None
        normal_mase = wanted["mase"]
        job = Job(name=MODEL, cron="* * * * *", trigger="drift", drift_window=NORMAL // STEP,
                  drift_min_forecasts=3, drift_ratio=2 * normal_mase / reference)  # fmt: skip
        now = [datetime(2030, 1, 1, tzinfo=UTC)]
        cycle = functools.partial(retrain, allow_worse_than_baseline=True, lock_dir=tmp_path)
        with Scheduler([job], store_url, uri, clock=lambda: now[0], run_cycle=cycle) as jobs:
            now[0] += timedelta(minutes=2)
            [quiet] = jobs.run_pending()
            assert quiet.status == "skipped" and quiet.error.startswith("no drift"), quiet

            # --- the series changes its level and period: live MASE crosses ------------
            drifted = _forecast_and_ingest(api, stamps, values, SEED + NORMAL, DRIFTED // STEP)
            late = _expected(drifted[-(NORMAL // STEP) :], values)
            assert late["mase"] > 2 * normal_mase, (late, normal_mase)
            _scored(api, NORMAL + DRIFTED)  # every forecast logged and scored
            now[0] += timedelta(minutes=2)
            [fired] = jobs.run_pending()
        assert fired.status == "succeeded", fired.error
        drift = fired.versions["drift"]
        assert drift["fired"] is True and drift["live_mase"] == pytest.approx(late["mase"])
        assert fired.versions["challenger"] == 2 and fired.promoted, fired.versions
        assert tracker.run_data(tracker.version(MODEL, 2).run_id).tags["retrain_trigger"] == "drift"

        # --- the service picks up the new champion -----------------------------------
        reloaded = api.post("/v1/admin/reload", headers=ADMIN)
        assert reloaded.status_code == 200, reloaded.text
        assert _served(api) == "2"
        answer = api.post(
            f"/v1/series/{SERIES}/forecast", headers=READ, json={"model": MODEL, "horizon": STEP}
        )
        assert answer.status_code == 200 and answer.json()["version"] == "2"
    app.state.series_store.close()
