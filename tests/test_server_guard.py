"""What a `durable serve` process refuses before its routes: a Host it does not serve
(DNS rebinding), a body over its limit (also while a chunked body arrives, with the
process's memory measured), a listing past 1,000 runs; and run ids with `/`, reachable
percent-encoded."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .sse import next_event
from .test_server import serve, wait_for_question

MB = 1_000_000


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert "stopped cleanly" in out


def test_a_host_the_server_does_not_serve_is_refused(db: Path | str) -> None:
    """A page of evil.example whose name resolves to 127.0.0.1 names itself in Host."""
    proc, url = serve(db, "--allowed-host", "durable.internal")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            rebinding = {"Host": f"evil.example:{url.rsplit(':', 1)[1]}"}
            refused = client.post("/api/workflows/child.ask_text/runs", json={}, headers=rebinding)
            assert refused.status_code == 421, refused.text
            assert refused.json()["code"] == "HOST_NOT_ALLOWED"
            assert "--allowed-host" in refused.json()["message"]
            assert client.get("/", headers=rebinding).status_code == 421
            assert client.get("/api/runs").json() == []  # nothing started
            for host in ("localhost", "LOCALHOST:1", "127.0.0.1", "durable.internal:443"):
                assert client.get("/api/runs", headers={"Host": host}).status_code == 200
    finally:
        stop(proc)


def raw_post(url: str, path: str, headers: dict[str, str], chunks: Iterator[bytes]) -> int:
    """POST over a bare socket, sending ``chunks`` until the server answers or closes, so
    a refusal is read even when it comes before the body is sent."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
        try:
            for chunk in chunks:
                conn.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed: read the answer
        answer = b""
        try:
            while b"\r\n" not in answer:
                data = conn.recv(4096)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 "), answer
    return int(answer.split()[1])


def chunked(total: int, size: int = MB) -> Iterator[bytes]:
    """A JSON string body of ``total`` bytes in chunked transfer encoding."""
    yield b'%x\r\n"\r\n' % 1
    for _ in range(total // size):
        yield b"%x\r\n" % size + b"x" * size + b"\r\n"
    yield b'1\r\n"\r\n0\r\n\r\n'


@pytest.fixture
def client(db: Path | str) -> Iterator[httpx.Client]:
    proc, url = serve(db)
    with httpx.Client(base_url=url, timeout=30) as served:
        yield served
    stop(proc)


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(db: Path | str) -> None:
    proc, url = serve(db)
    try:
        json_type = {"Content-Type": "application/json"}
        declared = json_type | {"Content-Length": str(100 * MB)}
        # Said by its Content-Length: refused with no byte of the body sent.
        assert raw_post(url, "/webhooks/child.hook", declared, iter(())) == 413
        before = rss_kb(proc.pid, "VmRSS")
        statuses: list[int] = []

        def send(path: str) -> None:
            headers = json_type | {"Transfer-Encoding": "chunked"}
            statuses.append(raw_post(url, path, headers, chunked(100 * MB)))

        paths = ["/webhooks/child.hook"] * 4 + ["/api/workflows/child.ask_text/runs"] * 2
        threads = [threading.Thread(target=send, args=(path,)) for path in paths]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        peak = rss_kb(proc.pid, "VmHWM")
        print(f"server RSS {before // 1000} MB before, peak {peak // 1000} MB after")
        assert statuses == [413] * len(paths)
        # Six 100 MB bodies, each cut off at 10 MB: no more than their limits.
        assert peak - before < 100_000, (before, peak)
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/api/runs").json() == []  # nothing started
            big = client.post("/api/workflows/child.ask_text/runs", content=b"[" * (11 * MB))
            assert big.status_code == 413 and big.json()["code"] == "BODY_TOO_LARGE"
    finally:
        stop(proc)


def test_max_body_sets_the_limit(db: Path | str) -> None:
    proc, url = serve(db, "--max-body", "100")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            fits = client.post("/api/workflows/child.ask_text/runs", json={"args": ["x" * 50]})
            assert fits.status_code == 201
            over = client.post("/api/workflows/child.ask_text/runs", json={"args": ["x" * 100]})
            assert over.status_code == 413 and "--max-body" in over.json()["message"]
    finally:
        stop(proc)


@pytest.mark.parametrize("limit", ["1001", "99999999999999999999", "ten", "1.5", "-1", "²"])
def test_limit_is_a_whole_number_up_to_1000(client: httpx.Client, limit: str) -> None:
    refused = client.get("/api/runs", params={"limit": limit})
    assert refused.status_code == 422 and refused.json()["code"] == "INVALID_REQUEST"
    assert "1 to 1000" in refused.json()["message"]
    assert client.get("/api/runs", params={"limit": "1000"}).status_code == 200


def test_run_ids_with_a_slash_are_reachable_percent_encoded(client: httpx.Client) -> None:
    for run_id in ("a/b", "tenant/1/order%2F7"):
        started = client.post(
            "/api/workflows/child.ask_text/runs",
            json={"kwargs": {"greeting": "hi"}},
            headers={"Idempotency-Key": run_id},
        )
        assert started.json() == {"run_id": run_id}
    a_b = "/api/runs/a%2Fb"
    assert client.get(a_b).json()["run_id"] == "a/b"
    (wait,) = wait_for_question(client, "a%2Fb")
    assert wait["question"] == "Your code?"
    assert client.get(f"{a_b}/state").json() == {}
    answered = client.post(f"{a_b}/respond", json={"value": "007"})
    assert answered.status_code == 200, answered.text
    for _ in range(1000):
        if client.get(a_b).json()["status"] == "completed":
            break
    assert client.get(a_b).json()["output"] == "hi '007'"
    assert "wait.completed" in [event["kind"] for event in client.get(f"{a_b}/history").json()]
    other = "/api/runs/tenant%2F1%2Forder%252F7"
    assert client.get(other).json()["run_id"] == "tenant/1/order%2F7"
    assert client.post(f"{other}/cancel", json={}).status_code == 200
    assert client.get(other).json()["status"] == "cancelled"
    assert client.get("/api/runs/a/b").status_code == 404  # a/b is not the run a, path b
    streamer = client.post(
        "/api/workflows/child.streamer/runs",
        json={"args": ["first"]},
        headers={"Idempotency-Key": "s/1"},
    )
    assert streamer.status_code == 201
    with client.stream("GET", "/api/runs/s%2F1/streams/out") as events:
        lines = events.iter_lines()
        first = next_event(lines)
        assert first["event"] == "value" and first["data"]["value"] == "first"
        sent = client.post("/api/runs/s%2F1/events/go", json={"n": 1})
        assert sent.status_code == 200
        assert next_event(lines)["data"]["value"] == {"second": True}
