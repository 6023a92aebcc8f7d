"""Ray for `forecast tune` and `forecast predict`: join a cluster, or start one on this machine.

With no address (and no `RAY_ADDRESS`), Ray starts inside this process with the machine's
cores and needs no set-up. With an address (`host:port` of a head node, `ray://host:port`
for Ray Client, or `auto` for the cluster started on this machine by `ray start`), the work
spreads over that cluster. A `host:port` that does not answer fails within seconds with a
one-line error, instead of Ray's minutes of retries.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from training.errors import ExperimentError

logger = logging.getLogger(__name__)

ADDRESS_ENV = "RAY_ADDRESS"
CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ClusterInfo:
    """What the work ran on: the address ("local" when started here), nodes and CPUs."""

    address: str
    nodes: int
    cpus: float


def resolve_address(address: str | None) -> str | None:
    """The flag, else `$RAY_ADDRESS`, else None (start Ray locally); blanks count as unset."""
    chosen = address if address is not None else os.environ.get(ADDRESS_ENV)
    return chosen.strip() or None if chosen is not None else None


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a `host:port` or `ray://host:port` address; None for `auto`/`local`."""
    bare = address.removeprefix("ray://")
    if bare in ("auto", "local"):
        return None
    host, sep, port = bare.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ExperimentError(
            f"--ray-address {address!r}: expected host:port (e.g. 127.0.0.1:6379), "
            "ray://host:10001 or auto. Fix: pass the head node's address, or leave it out "
            "to run on this machine"
        )
    return host, int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast when the address's port does not accept a TCP connection.

    Raises:
        ExperimentError: naming the address, the cause and the fix.
    """
    target = _host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as exc:
        raise ExperimentError(
            f"--ray-address {address!r}: no Ray head answers there ({exc.strerror or exc}). "
            "Fix: start one with `ray start --head --port PORT`, pass its address, or leave "
            f"--ray-address and ${ADDRESS_ENV} unset to run on this machine"
        ) from None


@contextmanager
def ray_session(address: str | None) -> Iterator[ClusterInfo]:
    """Connect to (or start) Ray for the block, then disconnect (stopping a local Ray).

    A session already open in this process (e.g. a caller's `ray.init`) is used as it is.

    Raises:
        ExperimentError: an unreachable or malformed address.
    """
    import ray

    chosen = resolve_address(address)
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if ray.is_initialized():
        yield _info(chosen or "existing")
        return
    if chosen is not None:
        check_reachable(chosen)
        try:
            ray.init(address=chosen, **quiet)
        except (ConnectionError, RuntimeError) as exc:
            raise ExperimentError(
                f"--ray-address {chosen!r}: cannot join the Ray cluster ({exc}). Fix: check "
                "the head node's address and that this machine runs the same Ray version"
            ) from None
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
    try:
        yield _info(chosen or "local")
    finally:
        ray.shutdown()


def _info(address: str) -> ClusterInfo:
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    cpus = ray.cluster_resources().get("CPU", 0.0)  # type: ignore[no-untyped-call]
    return ClusterInfo(address, len(nodes), float(cpus))
