"""Fixtures of the Ray tests: a real two-node Ray cluster on this machine.

The head and the second node are `ray start --block` processes, each in its own process
group, with one CPU each, and token authentication on (a token made for the session and set
in this process's environment, so every driver the tests start, in-process or a `forecast`
subprocess, presents it). Teardown stops exactly those two process groups (never a
machine-wide `ray stop`, which would end other people's Ray processes too).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

RAY = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ}
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(RAY), "start", *args, "--num-cpus=1", "--node-ip-address=127.0.0.1",
             "--object-store-memory=100000000", "--block"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the node's process group, then SIGKILL whatever is left of it."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _alive_nodes(address: str) -> int:
    import ray

    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        return len([n for n in ray.nodes() if n.get("Alive")])  # type: ignore[no-untyped-call]
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The address (127.0.0.1:PORT) of a running 2-node Ray cluster, 1 CPU per node."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "token")  # before Ray is imported: it reads them once
        mp.setenv("RAY_AUTH_TOKEN", uuid.uuid4().hex)
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        mp.delenv("RAY_ADDRESS", raising=False)
        pytest.importorskip("ray")
        yield from _cluster()


def _cluster() -> Iterator[str]:
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths
    port = _free_port()
    address = f"127.0.0.1:{port}"
    nodes = [_start(["--head", f"--port={port}", "--include-dashboard=false",
                     f"--temp-dir={temp}"], temp / "head.log")]  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1.0).close()
                break
            except OSError:
                if nodes[0].poll() is not None or time.monotonic() > deadline:
                    log = (temp / "head.log").read_text(errors="replace")[-800:]
                    pytest.skip(f"Ray cannot start a head node on this machine: {log}")
                time.sleep(0.5)
        nodes.append(_start([f"--address={address}"], temp / "worker.log"))
        while _alive_nodes(address) < 2:
            if nodes[1].poll() is not None or time.monotonic() > deadline:
                log = (temp / "worker.log").read_text(errors="replace")[-800:]
                pytest.skip(f"a second Ray node cannot join on this machine: {log}")
            time.sleep(1.0)
        yield address
    finally:
        for node in reversed(nodes):
            _stop(node)
        shutil.rmtree(temp, ignore_errors=True)
