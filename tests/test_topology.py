"""The production topology end to end, run as processes (issue 7): no Docker engine needed.

The test runs the commands the compose containers run (docs/deployment.md, "The same topology
without Docker") with the environment docker-compose.yml gives each service, against the
PostgreSQL server at FORECAST_TEST_POSTGRES_URL:

1. two fresh databases: one for MLflow, one for the series store and the scheduler's state;
2. `mlflow db upgrade`, then `mlflow server` on it with served artifacts in a temp folder;
3. `forecast load-series` seeds the store (the last 600 hours of ETTh1 from a CSV), and
   `forecast train --source store` trains an ESN and registers it (v1, champion);
4. two `forecast serve` replicas on their own loopback ports both serve v1;
5. new observations with another level and period go in through replica A's ingestion API,
   `forecast retrain` promotes a challenger (v2) trained on them;
6. both replicas switch to v2 within a few poll intervals while a client loop on each sees no
   failed request; `forecast schedule --once` (a cron of every minute, job state in the
   store's database, registered by an earlier `--once` process) runs and records a cycle;
7. the MLflow server stops; both replicas notice (failed registry polls) and keep answering.

Every process and both databases are cleaned up by fixtures, also on failure; an assertion
that fails carries the tail of every process's log.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

POSTGRES_URL = os.environ.get("FORECAST_TEST_POSTGRES_URL")
REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
BIN = Path(sys.executable).parent  # .venv/bin: `forecast` and `mlflow` live next to python

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        not POSTGRES_URL,
        reason="FORECAST_TEST_POSTGRES_URL is not set: the production topology test needs a "
        "PostgreSQL server it may create databases on, e.g. "
        "FORECAST_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres",
    ),
]

MODEL = "topo-etth1"
SERIES = "topo-etth1-ot"
SEED_ROWS = 600  # the newest hours of ETTh1 the store is seeded with
NEW_ROWS = 600  # observations ingested later, with another level and period
HORIZON, LOOKBACK = 6, 48
POLL_SECONDS = 1.0
SWITCH_LIMIT = 5 * POLL_SECONDS + 10  # a few polls, plus download and load on a busy machine
READ_KEY, ADMIN_KEY = "topo-read-key", "topo-admin-key"
READ, ADMIN = {"X-API-Key": READ_KEY}, {"X-API-Key": ADMIN_KEY}


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """One started command: its process group is ours to stop; stderr (and, for a server,
    stdout) goes to `log`; a one-shot command's stdout goes to `out`."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    out: Path | None = None


@dataclass
class Processes:
    """Starts commands in their own process groups, stops them all, and reports their logs."""

    root: Path
    started: list[Process] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    origin: float = field(default_factory=time.monotonic)

    def mark(self, event: str) -> None:
        """Note when `event` happened (seconds since start; written to timings.json)."""
        self.marks[event] = round(time.monotonic() - self.origin, 2)

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> Process:
        """Start a long-running command; stdout and stderr go to `<root>/<name>.log`."""
        return self._popen(name, argv, env, out=None)

    def launch(self, name: str, argv: list[str], env: Mapping[str, str]) -> Process:
        """Start a one-shot command; its stdout goes to `<root>/<name>.out` (see `finish`)."""
        return self._popen(name, argv, env, out=self.root / f"{name}.out")

    def _popen(
        self, name: str, argv: list[str], env: Mapping[str, str], out: Path | None
    ) -> Process:
        log = self.root / f"{name}.log"
        with log.open("wb") as err, (out or log).open("ab") as sink:
            popen = subprocess.Popen(
                argv, env=dict(env), cwd=self.root, stdin=subprocess.DEVNULL, stdout=sink,
                stderr=err if out else subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        process = Process(name, popen, log, out)
        self.started.append(process)
        return process

    def finish(self, process: Process, timeout: float) -> str:
        """Wait for a launched command; return its stdout.

        Raises:
            AssertionError: a non-zero exit or a timeout (the command is killed first).
        """
        assert process.out is not None, f"{process.name} was not launched as a one-shot"
        try:
            code = process.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(process, grace=5)
            raise AssertionError(f"`{process.name}` did not finish in {timeout:.0f} s") from None
        text = process.out.read_text(errors="replace")
        assert code == 0, f"`{process.name}` exited with {code}; stdout: {text[-500:]!r}"
        return text

    def run(self, name: str, argv: list[str], env: Mapping[str, str], timeout: float) -> str:
        """`launch` + `finish`: run a command to completion and return its stdout."""
        return self.finish(self.launch(name, argv, env), timeout)

    def stop(self, process: Process, grace: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds, then SIGKILL whatever
        the group still holds (a server's worker whose parent is gone). A process that has
        already exited is left alone: its group id may belong to someone else by now."""
        if process.popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            with suppress(ProcessLookupError):
                os.killpg(process.popen.pid, sig)
            with suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=wait)
                break
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.popen.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            self.stop(process)

    def tails(self, chars: int = 2500) -> str:
        """The end of every process's log, for an assertion message."""
        parts = []
        for p in self.started:
            code = p.popen.poll()
            state = "running" if code is None else f"exit {code}"
            for path in (p.log, p.out):
                if path is not None and path.exists():
                    text = path.read_text(errors="replace")[-chars:]
                    parts.append(f"----- {path.name} ({state}), last {chars} chars -----\n{text}")
        return "\n".join(parts)

    @contextmanager
    def explained(self) -> Iterator[None]:
        """Re-raise any failure inside with every process's log tail attached."""
        try:
            yield
        except Exception as exc:
            raise AssertionError(f"{exc}\n\nprocess logs:\n{self.tails()}") from exc
        finally:
            (self.root / "timings.json").write_text(json.dumps(self.marks, indent=1))


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    root = tmp_path / "topology"
    root.mkdir()
    procs = Processes(root)
    try:
        yield procs
    finally:
        procs.stop_all()


# --- databases ------------------------------------------------------------------------------


def _drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Two fresh databases (MLflow's; the series store's), dropped afterwards.

    Yields:
        (MLflow backend URL as postgresql+psycopg://, series store URL as postgresql://).
    """
    import psycopg
    from sqlalchemy.engine import make_url

    assert POSTGRES_URL is not None
    token = uuid.uuid4().hex[:10]
    names = (f"topo_mlflow_{token}", f"topo_store_{token}")
    created: list[str] = []
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for name in names:
                conn.execute(f'CREATE DATABASE "{name}"')
                created.append(name)
        base = make_url(POSTGRES_URL)
        yield (
            base.set(drivername="postgresql+psycopg", database=names[0]).render_as_string(False),
            base.set(drivername="postgresql", database=names[1]).render_as_string(False),
        )
    finally:
        for name in created:
            _drop_database(POSTGRES_URL, name)


# --- environments, as docker-compose.yml sets them -----------------------------------------


def base_env() -> dict[str, str]:
    """This process's environment without any FORECAST_* / MLFLOW_* setting of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORECAST_", "MLFLOW_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1")
    return env


def compose_env(service: str, ours: Mapping[str, str]) -> dict[str, str]:
    """The environment docker-compose.yml gives `service`, with this test's values for the
    variables that point at hosts, secrets and databases (`ours`; every one must be a variable
    compose sets there), and compose's own literal values for the rest."""
    declared = yaml.safe_load(COMPOSE.read_text())["services"][service].get("environment", {})
    unknown = sorted(set(ours) - set(declared))
    assert not unknown, f"compose service {service} sets no {unknown}; the test invents them"
    env = base_env()
    for key, value in declared.items():
        if key in ours:
            env[key] = ours[key]
        else:
            assert "$" not in str(value), f"compose {service}.{key}={value!r}: give it a value"
            env[key] = str(value)
    return env


# --- HTTP ------------------------------------------------------------------------------------


def wait_for(
    what: str, check: Callable[[], bool], limit: float, alive: list[Process], step: float = 0.3
) -> float:
    """Poll `check` until it is true; returns the seconds it took.

    Raises:
        AssertionError: after `limit` seconds, or at once when a process in `alive` exited.
    """
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except (httpx.HTTPError, OSError):
            pass
        for process in alive:
            code = process.popen.poll()
            assert code is None, f"{process.name} exited with {code} while waiting for {what}"
        assert time.monotonic() - started < limit, f"{what}: not after {limit:.0f} s"
        time.sleep(step)


def served_version(client: httpx.Client) -> str:
    response = client.get(f"/v1/models/{MODEL}", headers=READ)
    assert response.status_code == 200, response.text
    return str(response.json()["version"])


def registry_errors(client: httpx.Client) -> float:
    text = client.get("/metrics", headers=READ).text
    match = re.search(r"^forecast_registry_errors_total (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


@dataclass
class ForecastLoop:
    """A client sending forecasts to one replica until stopped; records every answer."""

    base_url: str
    body: dict[str, Any]
    stop: threading.Event
    answers: list[tuple[float, int, str]] = field(default_factory=list)  # (time, status, version)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=15) as client:
            while not self.stop.is_set():
                try:
                    response = client.post(
                        f"/v1/models/{MODEL}/forecast", headers=READ, json=self.body
                    )
                    ok = response.status_code == 200
                    detail = str(response.json()["version"]) if ok else response.text[:300]
                    self.answers.append((time.monotonic(), response.status_code, detail))
                except httpx.HTTPError as exc:
                    self.answers.append((time.monotonic(), 0, f"{type(exc).__name__}: {exc}"))
                self.stop.wait(0.1)

    def failures(self) -> list[tuple[float, int, str]]:
        return [answer for answer in self.answers if answer[1] != 200]

    def versions(self, since: float = 0.0) -> list[int]:
        return [int(v) for t, status, v in self.answers if status == 200 and t >= since]


# --- data ------------------------------------------------------------------------------------


def write_seed_csv(path: Path) -> tuple[list[datetime], list[float]]:
    """The newest SEED_ROWS hours of ETTh1's target as a CSV (date, OT); returns them."""
    from training.data.catalogue import load_dataset

    table = load_dataset("load/etth1").table.iloc[-SEED_ROWS:]
    stamps = [ts.to_pydatetime() for ts in table["timestamp"]]
    values = [float(v) for v in table["value"]]
    lines = ["date,OT"] + [
        f"{t:%Y-%m-%d %H:%M:%S},{v!r}" for t, v in zip(stamps, values, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return stamps, values


def new_pattern(after: datetime) -> tuple[list[str], list[float]]:
    """NEW_ROWS hours after `after`: level 40 (ETTh1's tail sits near 9), period 8 hours."""
    stamps = [(after + timedelta(hours=k)).isoformat() for k in range(1, NEW_ROWS + 1)]
    values = [
        40.0 + 8.0 * math.sin(2 * math.pi * k / 8) + 0.5 * math.sin(k) for k in range(NEW_ROWS)
    ]
    return stamps, values


def one_json(name: str, stdout: str) -> Any:
    """The one JSON object a `--json` command printed; anything else on stdout fails."""
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, (
        f"`{name} --json` must print exactly one JSON object on stdout; it printed "
        f"{len(lines)} lines: {stdout[:600]!r}"
    )
    return json.loads(lines[0])


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# --- the scenario ----------------------------------------------------------------------------


def test_production_topology_end_to_end(processes: Processes, databases: tuple[str, str]) -> None:
    mlflow_db, store_db = databases
    root = processes.root
    forecast, mlflow = str(BIN / "forecast"), str(BIN / "mlflow")
    mlflow_port, port_a, port_b = free_port(), free_port(), free_port()
    tracking = f"http://127.0.0.1:{mlflow_port}"
    # RAY_ADDRESS empty, as .env.example leaves it: batch work runs in the process itself.
    ours = {"MLFLOW_TRACKING_URI": tracking, "FORECAST_DATABASE_URL": store_db, "RAY_ADDRESS": ""}
    jobs_env = compose_env("scheduler", ours)
    trainer_env = compose_env("trainer", ours)
    api_env = compose_env(
        "api",
        {
            "MLFLOW_TRACKING_URI": tracking,
            "FORECAST_DATABASE_URL": store_db,
            "FORECAST_API_KEYS": READ_KEY,
            "FORECAST_ADMIN_KEYS": ADMIN_KEY,
            "FORECAST_MODELS": "",
            "FORECAST_POLL_SECONDS": str(POLL_SECONDS),
        },
    )
    schedule = root / "schedule.toml"
    schedule.write_text(f'[[jobs]]\nname = "{MODEL}"\ncron = "* * * * *"\n')
    schedule_argv = [forecast, "schedule", "--once", "--config", str(schedule), "--json"]

    with processes.explained():
        # The scheduler registers its job first (due at the next minute), so that by the time
        # the retraining below is done the job is due and no test time goes to waiting. It
        # needs only the store's database, so it runs while MLflow's schema is created.
        scheduling = processes.launch("schedule-1", schedule_argv, jobs_env)

        # --- 2. the MLflow server on PostgreSQL: schema first, then the server -------------
        mlflow_env = compose_env("mlflow", {"MLFLOW_BACKEND_STORE_URI": mlflow_db})
        assert mlflow_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"  # as compose sets
        processes.run("mlflow-db-upgrade", [mlflow, "db", "upgrade", mlflow_db], mlflow_env, 180)
        server = processes.start(
            "mlflow-server",
            [
                mlflow, "server", "--backend-store-uri", mlflow_db,
                "--artifacts-destination", str(root / "mlartifacts"), "--serve-artifacts",
                "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "2",
            ],
            mlflow_env,
        )  # fmt: skip

        first = one_json("forecast schedule", processes.finish(scheduling, timeout=90))
        assert first["cycles"] == [], first
        [job] = first["jobs"]
        due = datetime.fromisoformat(job["next_run_at"])
        processes.mark("scheduler job registered")
        assert (job["name"], job["cron"], job["last_run_at"]) == (MODEL, "* * * * *", None)

        # --- 3. seed the store (while the server starts), train and register ---------------
        seed_stamps, seed_values = write_seed_csv(root / "etth1-tail.csv")
        processes.run(
            "load-series",
            [
                forecast, "load-series", str(root / "etth1-tail.csv"), "--series-id", SERIES,
                "--time-col", "date", "--target-col", "OT", "--freq", "h",
            ],
            trainer_env,
            timeout=90,
        )  # fmt: skip
        wait_for(
            "mlflow server /health",
            lambda: httpx.get(f"{tracking}/health", timeout=2).status_code == 200,
            limit=120,
            alive=[server],
        )
        processes.mark("mlflow server healthy")
        trained = one_json(
            "forecast train",
            processes.run(
                "train",
                [
                    forecast, "train", "--source", "store", "--series", SERIES, "--family",
                    "esn", "--horizon", str(HORIZON), "--lookback", str(LOOKBACK), "--name",
                    MODEL, "--device", "cpu", "--json",
                    # the topology is under test, not accuracy: a tiny ESN may lose to naive
                    "--allow-worse-than-baseline",
                ],
                trainer_env,
                timeout=120,
            )
        )  # fmt: skip
        assert (trained["model_name"], trained["version"], trained["promoted"]) == (MODEL, 1, True)
        assert trained["data"]["rows"] == SEED_ROWS
        processes.mark("trained")

        # --- 4. two API replicas -------------------------------------------------------
        replicas = [
            processes.start(
                f"api-{label}",
                [forecast, "serve", "--host", "127.0.0.1", "--port", str(port)],
                api_env,
            )
            for label, port in (("a", port_a), ("b", port_b))
        ]
        clients = [
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15)
            for port in (port_a, port_b)
        ]
        try:
            wait_for(
                "both replicas ready (GET /v1/ready)",
                lambda: all(c.get("/v1/ready").status_code == 200 for c in clients),
                limit=120,
                alive=[*replicas, server],
            )
            assert [served_version(client) for client in clients] == ["1", "1"]
            processes.mark("replicas ready")
            _serve_retrain_and_survive(
                processes, clients, replicas, server, forecast=forecast,
                trainer_env=trainer_env, jobs_env=jobs_env, schedule_argv=schedule_argv,
                due=due, seed=(seed_stamps, seed_values), store_db=store_db,
            )  # fmt: skip
        finally:
            for client in clients:
                client.close()


def _serve_retrain_and_survive(
    processes: Processes,
    clients: list[httpx.Client],
    replicas: list[Process],
    server: Process,
    *,
    forecast: str,
    trainer_env: dict[str, str],
    jobs_env: dict[str, str],
    schedule_argv: list[str],
    due: datetime,
    seed: tuple[list[datetime], list[float]],
    store_db: str,
) -> None:
    """Steps 5 to 7, with a client loop on each replica running throughout."""
    seed_stamps, seed_values = seed
    a, b = clients
    body = {
        "timestamps": [t.isoformat() for t in seed_stamps[-LOOKBACK:]],
        "values": seed_values[-LOOKBACK:],
        "horizon": HORIZON,
        "levels": [80],
    }
    stop = threading.Event()
    loops = [ForecastLoop(str(c.base_url), body, stop) for c in clients]
    for loop in loops:
        loop.start()
    try:
        # --- 5. new observations through replica A, visible through replica B --------------
        stamps, values = new_pattern(seed_stamps[-1])
        ingested = a.post(
            f"/v1/series/{SERIES}/observations",
            headers=ADMIN,
            json={"timestamps": stamps, "values": values},
        )
        assert ingested.status_code == 200, ingested.text
        assert (ingested.json()["inserted"], ingested.json()["updated"]) == (NEW_ROWS, 0)
        info = b.get(f"/v1/series/{SERIES}", headers=READ)
        assert info.status_code == 200, info.text
        assert (info.json()["count"], info.json()["last_timestamp"]) == (
            SEED_ROWS + NEW_ROWS,
            stamps[-1] + "Z",  # answered in UTC, with the offset
        )
        denied = b.post(
            f"/v1/series/{SERIES}/observations", headers=READ, json={"timestamps": [], "values": []}
        )
        assert denied.status_code == 403, denied.text
        processes.mark("ingested")

        retrained = one_json(
            "forecast retrain",
            processes.run(
                "retrain",
                [forecast, "retrain", MODEL, "--json", "--allow-worse-than-baseline"],
                trainer_env,
                180,
            ),
        )
        promoted_at = time.monotonic()
        processes.mark("retrained")
        assert retrained["promoted"] is True, retrained
        assert (
            retrained["challenger_version"],
            retrained["champion_version_before"],
            retrained["champion_version_after"],
        ) == (2, 1, 2)
        scores = retrained["scores"]
        assert scores["challenger"] < scores["champion"], scores
        assert retrained["data"]["rows"] == SEED_ROWS + NEW_ROWS
        assert retrained["data"]["end"].startswith(stamps[-1])

        # --- 6. both replicas switch, no failed request -------------------------------------
        wait_for(
            "both replicas serving v2 (GET /v1/models and the forecasts' version)",
            lambda: all(
                served_version(c) == "2" and 2 in lp.versions()
                for c, lp in zip(clients, loops, strict=True)
            ),
            limit=SWITCH_LIMIT,
            alive=[*replicas, server],
            step=0.1,
        )
        processes.marks["switch_seconds"] = round(time.monotonic() - promoted_at, 2)

        # A day more of observations, so the scheduled cycle has new data to train on (a cycle
        # without new observations skips: tests/training/test_retrain.py).
        more_stamps, more_values = new_pattern(datetime.fromisoformat(stamps[-1]))
        more = a.post(
            f"/v1/series/{SERIES}/observations",
            headers=ADMIN,
            json={"timestamps": more_stamps[:24], "values": more_values[:24]},
        )
        assert more.status_code == 200 and more.json()["inserted"] == 24, more.text

        # The scheduler's cycle: a new process that finds the job the first one registered.
        wait = (due - utc_now()).total_seconds() + 1.0
        assert wait < 65, f"the job is due at {due}, {wait:.0f} s from now"
        if wait > 0:
            time.sleep(wait)
        second = one_json(
            "forecast schedule", processes.run("schedule-2", schedule_argv, jobs_env, 180)
        )
        [cycle] = second["cycles"]
        assert (cycle["name"], cycle["status"], cycle["error"]) == (MODEL, "succeeded", None)
        versions = cycle["versions"]
        assert (versions["challenger"], versions["champion_before"]) == (3, 2), cycle
        champion = versions["champion_after"]
        assert champion == (3 if cycle["promoted"] else 2), cycle
        [job] = second["jobs"]
        assert job["last_status"] == "succeeded" and job["next_run_at"] > job["last_run_at"]
        runs = _scheduler_runs(store_db)
        assert runs == [(MODEL, "succeeded", cycle["promoted"])], runs
        processes.mark("scheduler cycle recorded")
        wait_for(
            f"both replicas serving v{champion}",
            lambda: all(served_version(c) == str(champion) for c in clients),
            limit=SWITCH_LIMIT,
            alive=[*replicas, server],
        )

        # --- 7. the registry goes away; the replicas keep serving ---------------------------
        processes.stop(server)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{_port(server)}/health", timeout=2)
        stopped_at = time.monotonic()
        processes.mark("mlflow server stopped")
        wait_for(
            "both replicas noticing the registry is gone (forecast_registry_errors_total)",
            lambda: all(registry_errors(c) >= 1 for c in clients),
            limit=60,
            alive=replicas,
            step=0.5,
        )
        processes.mark("registry errors seen")
        for client in clients:
            for _ in range(5):
                response = client.post(f"/v1/models/{MODEL}/forecast", headers=READ, json=body)
                assert response.status_code == 200, response.text
                assert response.json()["version"] == str(champion)
            stored = client.post(
                f"/v1/series/{SERIES}/forecast",
                headers=READ,
                json={"model": MODEL, "horizon": HORIZON, "levels": [80]},
            )
            assert stored.status_code == 200, stored.text
            assert stored.json()["version"] == str(champion)
            assert client.get("/v1/ready").status_code == 200
    finally:
        stop.set()
        for loop in loops:
            assert loop.thread is not None
            loop.thread.join(timeout=30)

    for client, loop in zip(clients, loops, strict=True):
        where = f"client loop on {client.base_url}"
        assert loop.failures() == [], f"{where}: failed requests {loop.failures()[:5]}"
        seen = loop.versions()
        assert seen[0] == 1 and seen == sorted(seen), f"{where}: versions went back: {seen}"
        assert seen[-1] == champion, f"{where}: ended on v{seen[-1]}, not v{champion}"
        after_stop = loop.versions(since=stopped_at)
        assert len(after_stop) >= 3, f"{where}: {len(after_stop)} answers after the stop"


def _port(process: Process) -> str:
    argv = process.popen.args
    assert isinstance(argv, list)
    return str(argv[argv.index("--port") + 1])


def _scheduler_runs(store_db: str) -> list[tuple[str, str, bool]]:
    """The cycles the scheduler recorded in the store's database, read with plain SQL."""
    import sqlalchemy as sa

    engine = sa.create_engine(store_db.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, status, promoted FROM scheduler_runs"))
            return [(r.name, r.status, bool(r.promoted)) for r in rows]
    finally:
        engine.dispose()
