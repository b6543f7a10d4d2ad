"""The API's reads for the web view, against a real ``durable serve``: every run reachable
by cursor and search among 10,000, a run's steps with their attempts, the workflows,
queues and schedules, and what resume says it did."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

import durable
from durable.workflow.step_info import idempotency_key

from .processes import durable_process, kill_mid_step
from .seeded_runs import seed
from .test_server import free_port

SEEDED = 10_000
NOW = time.time()


def serve_web(db: Path | str, *extra: str, **env: str) -> tuple[subprocess.Popen[str], str]:
    """``durable serve tests.child tests.web_app`` on a free port, once it listens."""
    port = free_port()
    args = ("--db", str(db), "serve", "tests.child", "tests.web_app", "--port", str(port))
    proc = durable_process(*args, *extra, ready="durable serve:", **env)
    return proc, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def web_site(db: Path | str, *extra: str) -> Iterator[tuple[str, httpx.Client]]:
    """A served web view (``serve_web``) and a client of its API, stopped after."""
    proc, url = serve_web(db, *extra)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield url, client
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.fixture
def web_api(db: Path | str) -> Iterator[httpx.Client]:
    proc, url = serve_web(db)
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert "stopped cleanly" in out


def until_status(api: httpx.Client, run_id: str, *wanted: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = api.get(f"/api/runs/{run_id}").json()
        if run["status"] in wanted:
            return dict(run)
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never became {wanted}: {run}")


def test_every_one_of_ten_thousand_runs_is_reachable_by_cursor(db: Path | str) -> None:
    asyncio.run(seed(db, SEEDED, now=NOW))
    proc, url = serve_web(db)
    try:
        with httpx.Client(base_url=url, timeout=60) as api:
            seen: list[str] = []
            cursor = None
            while True:
                answer = api.get("/api/runs", params={"limit": 1000, **_cursor(cursor)})
                assert answer.status_code == 200
                seen += [run["run_id"] for run in answer.json()]
                cursor = answer.headers.get("next-cursor")
                if cursor is None:
                    break
            assert seen == [f"bulk-{i:05}" for i in range(SEEDED - 1, -1, -1)]
            _searches(api)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _cursor(cursor: str | None) -> dict[str, str]:
    return {} if cursor is None else {"cursor": cursor}


def _searches(api: httpx.Client) -> None:
    def ids(**query: str | int) -> list[str]:
        return [run["run_id"] for run in api.get("/api/runs", params=query).json()]

    assert ids(q="bulk-0004") == [f"bulk-{i:05}" for i in range(49, 39, -1)]  # the oldest
    assert ids(q="00042") == ["bulk-00042"]
    assert ids(prefix="bulk-0000", status="failed") == ["bulk-00007", "bulk-00004", "bulk-00001"]
    assert ids(q="77", workflow="bulk.export", limit=3) == [
        "bulk-09977",
        "bulk-09877",
        "bulk-09779",
    ]
    # Run i was created (SEEDED - i) minutes before NOW: a window of three minutes.
    since = datetime.fromtimestamp(NOW - 60 * (SEEDED - 12) - 1, UTC).isoformat()
    until = datetime.fromtimestamp(NOW - 60 * (SEEDED - 15) - 1, UTC).isoformat()
    assert ids(since=since, until=until) == ["bulk-00014", "bulk-00013", "bulk-00012"]
    page = api.get("/api/runs", params={"q": "bulk-000", "limit": 40})
    rest = api.get("/api/runs", params={"q": "bulk-000", "cursor": page.headers["next-cursor"]})
    assert [r["run_id"] for r in page.json() + rest.json()] == [
        f"bulk-{i:05}" for i in range(99, -1, -1)
    ]
    assert "next-cursor" not in rest.headers  # the last page says so


def test_bad_list_parameters_say_what_to_send(web_api: httpx.Client) -> None:
    cases = {
        "limit=0": "limit must be a whole number from 1 to 1000",
        "cursor=%25%25": "is not one this server gave",
        "since=yesterday": "since must be an ISO 8601 time with its offset",
        "until=2026-01-01T00:00:00": "until must be an ISO 8601 time with its offset",
        "cursor=YQ&after=a": "not both",
    }
    for query, message in cases.items():
        answer = web_api.get(f"/api/runs?{query}")
        assert answer.status_code == 422, query
        assert answer.json()["code"] == "INVALID_REQUEST" and message in answer.json()["message"]
    gone = web_api.get("/api/runs", params={"cursor": "Z29uZQ"})  # a run that is not there
    assert gone.status_code == 404 and gone.json()["code"] == "RUN_NOT_FOUND"


def test_a_runs_steps_hold_input_result_key_and_every_attempt(web_api: httpx.Client) -> None:
    web_api.post(
        "/api/workflows/web.checkout/runs",
        json={"args": ["o-7"], "kwargs": {"cents": 500}},
        headers={"Idempotency-Key": "c-7"},
    )
    until_status(web_api, "c-7", "waiting")
    reserve, charge = web_api.get("/api/runs/c-7/steps").json()
    assert reserve["input"] == {"args": ["o-7"], "kwargs": {}}
    assert reserve["result"] == "slot-o-7" and reserve["status"] == "completed"
    assert charge["idempotency_key"] == idempotency_key("c-7", 1, "charge")
    first, second = charge["attempts"]
    assert first["outcome"] == "failed" and first["error"]["type"] == "CardDeclined"
    assert "in charge" in first["traceback"] and first["retry_at"] is not None
    assert second["outcome"] == "completed" and second["traceback"] is None
    assert charge["result"] == {"receipt": "r-o-7", "cents": 500}
    assert web_api.get("/api/runs/nope/steps").status_code == 404


def test_workflows_queues_and_schedules_are_listed(web_api: httpx.Client) -> None:
    for i in range(3):
        web_api.post("/api/workflows/web.in_line/runs", json={"args": [i]})
    deadline = time.monotonic() + 30
    while True:
        (line,) = [q for q in web_api.get("/api/queues").json() if q["name"] == "web.one_at_a_time"]
        if (line["queued"], line["running"]) == (2, 1) or time.monotonic() > deadline:
            break
    assert line == {
        "name": "web.one_at_a_time",
        "queued": 2,
        "running": 1,
        "concurrency": 1,
        "per_runtime": None,
        "rate": None,
    }
    (nightly,) = web_api.get("/api/schedules").json()
    assert nightly["workflow"] == "web.nightly" and nightly["cron"] == "0 3 * * *"
    assert nightly["next_tick"].endswith("T03:00:00+00:00") and nightly["last_run_id"] is None
    workflows = {w["name"]: w for w in web_api.get("/api/workflows").json()}
    assert workflows["web.checkout"]["parameters"] == ["order_id", "cents"]
    assert workflows["web.in_line"]["queue"] == "web.one_at_a_time"
    assert workflows["web.nightly"]["cron"] == "0 3 * * *"


def test_resume_says_what_it_did(web_api: httpx.Client) -> None:
    web_api.post(
        "/api/workflows/web.broken/runs", json={"args": ["o-9"]}, headers={"Idempotency-Key": "b-9"}
    )
    until_status(web_api, "b-9", "failed")
    resumed = web_api.post("/api/runs/b-9/resume", json={})
    assert resumed.json() == {"ok": True, "resumed": "step", "position": 1, "step": "refund"}
    until_status(web_api, "b-9", "failed")
    rerun = web_api.post("/api/runs/b-9/rerun", json={"position": 0})
    assert rerun.json() == {"ok": True, "position": 0}


def test_an_attempt_cut_short_by_a_crash_is_shown_interrupted(
    db: Path | str, tmp_path: Path
) -> None:
    """A step whose process was killed mid-attempt: that attempt ``interrupted``, the
    one after it completed, both under the same idempotency key."""
    effects = tmp_path / "effects.log"
    kill_mid_step(db, effects, "second", DURABLE_LEASE="1")  # type: ignore[arg-type]  # a URL too
    proc, url = serve_web(db, DURABLE_TEST_EFFECTS=str(effects))
    try:
        with httpx.Client(base_url=url, timeout=30) as api:
            until_status(api, "run-three_steps", "completed")
            first, second, third = api.get("/api/runs/run-three_steps/steps").json()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert [a["outcome"] for a in second["attempts"]] == ["interrupted", "completed"]
    assert [a["attempt"] for a in second["attempts"]] == [1, 2]
    assert second["attempts"][0]["ended_at"] is None and second["status"] == "completed"
    assert [a["outcome"] for a in first["attempts"] + third["attempts"]] == ["completed"] * 2


def test_every_route_of_the_api_is_in_its_openapi_description() -> None:
    from durable.server import create_app
    from durable.server._openapi import OPENAPI

    app = create_app(durable.Runtime(":memory:"))
    routes = {getattr(route, "path", "") for route in app.routes}
    api = {path for path in routes if path.startswith(("/api/", "/webhooks/", "/metrics"))}
    assert api - set(OPENAPI["paths"]) == set()
