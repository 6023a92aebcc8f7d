"""No request can hurt another: a poisoned item fails alone, bodies are bounded and checked for
a key before they are read, and a 500 still answers with the error body on a live connection."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from service.main import create_app
from tests.service.conftest import HOURLY, READ, READ_KEY, Store, live_server

URL = f"/v1/models/{HOURLY}/forecast"


def test_one_poisoned_item_among_100_concurrent_valid_ones_fails_alone(
    client: TestClient, store: Store
) -> None:
    h = store.hourly
    good = h.body(horizon=3)
    # 1e39 is a finite JSON number that overflows float32 (inf inside the model).
    poisoned = {**good, "values": [*h.values[:40], 1e39, *h.values[41:]]}
    bodies = [good] * 50 + [poisoned] + [good] * 50
    answers: list[tuple[int, dict[str, Any]]] = [(0, {})] * len(bodies)
    start = threading.Barrier(len(bodies))

    def send(i: int) -> None:
        start.wait()
        response = client.post(URL, headers=READ, json=bodies[i])
        answers[i] = (response.status_code, response.json())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    status, body = answers.pop(50)
    assert (status, body["field"]) == (422, "values[40]")
    assert body["detail"].startswith("value 1e+39 at values[40] exceeds the float32 range")
    assert {s for s, _ in answers} == {200}
    assert len({json.dumps(b["mean"]) for _, b in answers}) == 1


def _raw(port: int, head: bytes, body: Callable[[socket.socket], None]) -> bytes:
    """Send a request head, then whatever `body` sends; return the first reply bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        # The server may answer and close while we still send: that is the point.
        with contextlib.suppress(OSError):
            body(sock)
        sock.settimeout(10)
        return sock.recv(65536)


def test_oversized_bodies_are_refused_before_they_are_read(store: Store) -> None:
    """A 100 MB Content-Length: 401 without a key, 413 with one, both answered after 64 kB of
    the body was sent (so nothing waited for, or parsed, the rest); chunked bodies stop at the
    limit while read."""
    app = create_app(store.settings(max_body_bytes=1_000_000))
    piece = b"[" + b"1.0," * 16_000  # 64 kB of a JSON array that never ends
    with live_server(app) as port:
        for headers, status in ((b"", b"401"), (f"X-API-Key: {READ_KEY}\r\n".encode(), b"413")):
            head = (
                (
                    f"POST {URL}/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: 104857600\r\n"
                ).encode()
                + headers
                + b"\r\n"
            )
            reply = _raw(port, head, lambda s: s.sendall(piece))
            assert reply.startswith(b"HTTP/1.1 " + status), reply[:200]
            detail = json.loads(reply.split(b"\r\n\r\n", 1)[1])
            if status == b"401":
                assert detail["field"] == "X-API-Key"
            else:
                assert detail == {
                    "detail": "the request body has 104857600 bytes, above this service's limit "
                    "of 1000000; send only the last lookback points of each series, or split "
                    "the request (FORECAST_MAX_BODY_BYTES sets the limit)",
                    "field": "body",
                }

        def chunks(sock: socket.socket) -> None:
            for _ in range(40):  # 2.6 MB in all, well past the limit
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")

        for url in (f"{URL}/batch", URL):
            head = (
                f"POST {url} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Transfer-Encoding: chunked\r\nX-API-Key: {READ_KEY}\r\n\r\n"
            ).encode()
            reply = _raw(port, head, chunks)
            assert reply.startswith(b"HTTP/1.1 413"), reply[:300]
            assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["field"] == "body"


def test_a_body_that_is_not_json_is_415_naming_the_fix(client: TestClient, store: Store) -> None:
    content = json.dumps(store.hourly.body(horizon=3))
    for headers in ({"Content-Type": "text/plain"}, {}):
        response = client.post(f"{URL}/batch", headers={**READ, **headers}, content=content)
        assert response.status_code == 415, response.text
        assert response.json()["field"] == "Content-Type"
        assert response.json()["detail"].endswith(
            "send it as JSON with the header Content-Type: application/json"
        )


def test_a_500_answers_with_the_error_body_and_keeps_the_connection(store: Store) -> None:
    app = create_app(store.settings())

    def boom() -> None:
        raise RuntimeError("a bug, not the caller's fault")

    # A real route that fails: stands for any bug the service has not met yet.
    app.add_api_route("/v1/test-boom", boom)
    with live_server(app) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/v1/test-boom", headers=READ)
        failed = connection.getresponse()
        assert failed.status == 500
        assert json.loads(failed.read()) == {
            "detail": "internal error; the service logged the details",
            "field": None,
        }
        sock = connection.sock
        connection.request("GET", "/v1/health")
        again = connection.getresponse()
        assert (again.status, json.loads(again.read())) == (200, {"status": "ok"})
        assert connection.sock is sock  # the same connection, not a reconnect
        connection.close()
