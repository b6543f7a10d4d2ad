"""The HTTP API against a real `durable serve` process: every endpoint, its errors, SSE,
and the token rule."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from .processes import durable_command, durable_process
from .sse import next_event


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(db: Path | str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """``durable serve tests.child`` on a free port, once it listens; and its address."""
    port = free_port()
    args = ("--db", str(db), "serve", "tests.child", "--port", str(port), *extra)
    return durable_process(*args, ready="durable serve:"), f"http://127.0.0.1:{port}"


@pytest.fixture
def api(db: Path | str) -> Iterator[httpx.Client]:
    proc, url = serve(db)
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert "stopped cleanly" in out


def wait_for_question(api: httpx.Client, run_id: str) -> list[dict[str, object]]:
    for _ in range(1000):
        waits = api.get(f"/api/runs/{run_id}/waits").json()
        if waits:
            return list(waits)
    raise AssertionError(f"run {run_id} asked nothing")


def test_serve_listens_once_it_says_so(db: Path | str) -> None:
    """Its first line is what a script waits for before it connects: by then the port
    must accept a connection, with no retry."""
    proc, url = serve(db)
    host, port = url.removeprefix("http://").split(":")
    socket.create_connection((host, int(port)), timeout=5).close()
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert "stopped cleanly" in out


def test_start_read_answer_and_finish_a_run(api: httpx.Client) -> None:
    started = api.post(
        "/api/workflows/child.ask_text/runs",
        json={"args": [], "kwargs": {"greeting": "hi"}},
        headers={"Idempotency-Key": "ask-1"},
    )
    assert started.status_code == 201 and started.json() == {"run_id": "ask-1"}
    again = api.post(
        "/api/workflows/child.ask_text/runs",
        json={"kwargs": {"greeting": "hi"}},
        headers={"Idempotency-Key": "ask-1"},
    )
    assert again.status_code == 201  # the same run, by its id
    mismatch = api.post(
        "/api/workflows/child.ask_text/runs",
        json={"kwargs": {"greeting": "yo"}},
        headers={"Idempotency-Key": "ask-1"},
    )
    assert mismatch.status_code == 409 and mismatch.json()["code"] == "IDEMPOTENCY_KEY_MISMATCH"
    (wait,) = wait_for_question(api, "ask-1")
    assert wait["question"] == "Your code?" and wait["wait_id"] == "user:0"
    answered = api.post("/api/runs/ask-1/respond", json={"value": "007", "wait_id": None})
    assert answered.status_code == 200
    twice = api.post("/api/runs/ask-1/respond", json={"value": "008"})
    assert twice.status_code == 409 and twice.json()["code"] == "NO_PENDING_WAIT"
    for _ in range(1000):
        run = api.get("/api/runs/ask-1").json()
        if run["status"] == "completed":
            break
    assert run["output"] == "hi '007'" and run["workflow"] == "child.ask_text"
    listed = api.get("/api/runs", params={"workflow": "child.ask_text", "limit": 5}).json()
    assert [r["run_id"] for r in listed] == ["ask-1"]
    history = api.get("/api/runs/ask-1/history").json()
    assert [e["kind"] for e in history if e["position"] == 0] == ["wait.started", "wait.completed"]
    assert api.get("/api/runs/ask-1/state").json() == {}
    # Re-run from the question (its journaled answer stands, as rerun_from keeps messages).
    assert api.post("/api/runs/ask-1/rerun", json={"position": 0}).status_code == 200
    for _ in range(1000):
        rerun = [e for e in api.get("/api/runs/ask-1/history").json() if e["kind"] == "run.rerun"]
        run = api.get("/api/runs/ask-1").json()
        if rerun and run["status"] == "completed":
            break
    assert run["status"] == "completed" and rerun[0]["payload"] == {"position": 0}
    bad = api.post("/api/runs/ask-1/rerun", json={"position": "first"})
    assert (bad.status_code, bad.json()["code"]) == (422, "INVALID_REQUEST")


def test_errors_have_a_code_a_message_and_a_fitting_status(api: httpx.Client) -> None:
    cases = [
        (api.get("/api/runs/nope"), 404, "RUN_NOT_FOUND"),
        (api.get("/api/runs/nope/history"), 404, "RUN_NOT_FOUND"),
        (api.get("/api/runs/nope/streams/out"), 404, "RUN_NOT_FOUND"),
        (api.post("/api/runs/nope/cancel", json={}), 404, "RUN_NOT_FOUND"),
        (api.post("/api/runs/nope/cancel"), 415, "NOT_JSON"),  # fetch(no-cors) sends this
        (api.post("/api/workflows/no.such/runs", json={}), 404, "WORKFLOW_NOT_FOUND"),
        (api.get("/api/runs", params={"limit": "0"}), 422, "INVALID_REQUEST"),
        (api.get("/api/runs", params={"status": "done"}), 422, "INVALID_REQUEST"),
        (
            api.post("/api/workflows/child.ask_text/runs", json={"args": "x"}),
            422,
            "INVALID_REQUEST",
        ),
        (
            api.post(
                "/api/workflows/child.ask_text/runs",
                content=b"args=1",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            415,
            "NOT_JSON",
        ),
        (
            api.post(
                "/api/workflows/child.ask_text/runs",
                content=b"{",
                headers={"Content-Type": "application/json"},
            ),
            422,
            "INVALID_REQUEST",
        ),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert response.json()["message"]
    started = api.post("/api/workflows/child.approve/runs", json={}).json()["run_id"]
    wait_for_question(api, started)
    bad = api.post(f"/api/runs/{started}/respond", json={"value": "maybe"})
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_RESPONSE")
    assert api.post(f"/api/runs/{started}/respond", json={}).status_code == 422
    assert api.post(f"/api/runs/{started}/cancel", json={}).status_code == 200
    again = api.post(f"/api/runs/{started}/cancel", json={})
    assert again.status_code == 400 and "already ended cancelled" in again.json()["message"]
    resumed = api.post(f"/api/runs/{started}/resume", json={})
    assert resumed.status_code == 400 and "only a failed run" in resumed.json()["message"]
    assert api.get("/api/runs/x", headers={}).status_code == 404
    assert api.get("/openapi.json").json()["openapi"].startswith("3.")


def test_a_stream_is_read_as_server_sent_events_while_the_workflow_writes(
    api: httpx.Client,
) -> None:
    run_id = api.post("/api/workflows/child.streamer/runs", json={"args": ["first"]}).json()[
        "run_id"
    ]
    with api.stream("GET", f"/api/runs/{run_id}/streams/out") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = events.iter_lines()
        first = next_event(lines)
        assert first["event"] == "value" and first["data"]["value"] == "first"
        sent = api.post(
            f"/api/runs/{run_id}/events/go",
            json={"n": 1},
            headers={"Idempotency-Key": "delivery-1"},
        )
        assert sent.status_code == 200
        second = next_event(lines)
        assert second["data"] == {
            "cursor": int(second["id"]),
            "kind": "value",
            "value": {"second": True},
            "position": None,
            "attempt": None,
        }
        assert [line for line in lines if line] == ["event: end", "data: null"]
        assert int(first["id"]) < int(second["id"])


def test_another_address_needs_a_token_and_a_token_is_checked(db: Path | str) -> None:
    refused = durable_command("--db", str(db), "serve", "tests.child", "--host", "0.0.0.0")
    assert refused.returncode == 1 and "without a token" in refused.stderr
    proc, url = serve(db, "--token", "s3cret")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            missing = client.get("/api/runs")
            assert missing.status_code == 401 and missing.json()["code"] == "UNAUTHORIZED"
            assert (
                client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code
                == 401
            )
            ok = client.get("/api/runs", headers={"Authorization": "Bearer s3cret"})
            assert ok.status_code == 200 and ok.json() == []
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def signed(body: bytes, delivery: str, at: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed by the package's own signer."""
    from standardwebhooks import Webhook

    from .child import WEBHOOK_SECRET

    at = at or datetime.now(UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": delivery,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(WEBHOOK_SECRET).sign(delivery, at, body),
    }


def test_a_signed_webhook_starts_one_run_per_delivery(api: httpx.Client) -> None:
    body = b'{"order": "o-7"}'
    headers = signed(body, "delivery-7")
    stale = signed(body, "delivery-7", datetime.now(UTC) - timedelta(minutes=6))
    wrong = headers | {"webhook-signature": "v1," + "A" * 44}
    missing = {k: v for k, v in headers.items() if k != "webhook-signature"}
    for bad in (missing, wrong, stale, {"Content-Type": "application/json"}):
        refused = api.post("/webhooks/child.hook", content=body, headers=bad)
        assert refused.status_code == 401 and refused.json()["code"] == "BAD_SIGNATURE"
    assert api.get("/api/runs", params={"workflow": "child.hook"}).json() == []  # nothing started
    first = api.post("/webhooks/child.hook", content=body, headers=headers)
    assert first.status_code == 202 and first.json() == {"run_id": "delivery-7"}
    again = api.post("/webhooks/child.hook", content=body, headers=headers)  # a redelivery
    assert again.json() == {"run_id": "delivery-7"}
    # A captured delivery replayed under new ids: the id is signed, so each is refused.
    for n in range(5):
        replayed = api.post(
            "/webhooks/child.hook", content=body, headers=headers | {"webhook-id": f"replay-{n}"}
        )
        assert replayed.status_code == 401
    # Svix sends the same scheme under its own header names.
    svix = {k.replace("webhook-", "svix-"): v for k, v in signed(body, "msg_8").items()}
    assert api.post("/webhooks/child.hook", content=body, headers=svix).status_code == 202
    assert len(api.get("/api/runs", params={"workflow": "child.hook"}).json()) == 2
    for _ in range(1000):
        run = api.get("/api/runs/delivery-7").json()
        if run["status"] == "completed":
            break
    assert run["output"] == "got o-7"
    unhooked = api.post("/webhooks/child.approve", content=body, headers=headers)
    assert unhooked.status_code == 404


def test_a_webhook_needs_a_secret_in_the_standard_webhooks_form() -> None:
    import base64

    import durable

    with pytest.raises(ValueError, match="needs webhook_secret='whsec_'"):
        durable.workflow(name="server.no_secret", webhook=True)
    for bad in ("a-secret-of-at-least-16", "whsec_short", "whsec_not base64 at all!!!!!!!!!!!"):
        with pytest.raises(ValueError, match=r"secrets.token_bytes\(32\)"):
            durable.workflow(name="server.bad", webhook=True, webhook_secret=bad)
    fine = "whsec_" + base64.b64encode(b"k" * 32).decode()
    durable.workflow(name="server.fine", webhook=True, webhook_secret=fine)
