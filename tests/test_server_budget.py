"""Budgets over HTTP against a real ``durable serve``: a run's usage, raising its budget
(and every refusal with its status), starting a run with a budget, answering stop, and
the spend counter on ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .processes import durable_process
from .test_server import free_port
from .test_server_reads import until_status


@pytest.fixture
def api(db: Path | str) -> Iterator[httpx.Client]:
    port = free_port()
    args = ("--db", str(db), "serve", "tests.budget_app", "--port", str(port))
    proc = durable_process(*args, ready="durable serve:")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert "stopped cleanly" in out


def asked(api: httpx.Client, run_id: str, wait_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for wait in api.get(f"/api/runs/{run_id}/waits").json():
            if wait["wait_id"] == wait_id:
                return dict(wait)
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never asked {wait_id}")


def spend_samples(api: httpx.Client) -> dict[tuple[str, str], float]:
    page = api.get("/metrics").text
    return {
        (sample.labels["workflow"], sample.labels["unit"]): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == "durable_spend_total"
    }


def test_usage_raise_and_stop(api: httpx.Client) -> None:
    started = api.post(
        "/api/workflows/budget.spender/runs", json={}, headers={"Idempotency-Key": "s"}
    )
    assert started.status_code == 201, started.text
    question = asked(api, "s", "budget:2")
    assert question["budget"] == {
        "run_id": "s",
        "unit": "usd",
        "spent": {"usd": 1.0, "tokens": 200},
        "cap": {"usd": 1.0, "tokens": None},
    }
    used = api.get("/api/runs/s/usage").json()
    assert (used["usd"], used["tokens"], used["budget_run_id"]) == (1.0, 200, "s")
    assert used["by_step"]["1"] == {"step": "paid", "usd": 0.5, "tokens": 100, "attempts": 1}

    for run_id, body, status, code in (
        ("s", {"usd": -1}, 400, "INVALID_AMOUNT"),
        ("s", {"usd": "5"}, 400, "INVALID_AMOUNT"),
        ("s", {"tokens": 1.5}, 400, "INVALID_AMOUNT"),
        ("s", {"usd": None}, 400, "INVALID_AMOUNT"),
        ("s", {"usd": 0.5}, 400, "INVALID_AMOUNT"),  # below what was spent
        ("s", {"dollars": 5}, 422, "INVALID_REQUEST"),
        ("s", [5], 422, "INVALID_REQUEST"),
        ("nope", {"usd": 5}, 404, "RUN_NOT_FOUND"),
    ):
        refused = api.post(f"/api/runs/{run_id}/budget", json=body)
        assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text
    assert "below what run 's' spent" in api.post("/api/runs/s/budget", json={"usd": 0.5}).text
    assert api.get("/api/runs/nope/usage").status_code == 404
    not_stop = api.post("/api/runs/s/respond", json={"value": "more"})
    assert (not_stop.status_code, not_stop.json()["code"]) == (400, "INVALID_RESPONSE")

    raised = api.post("/api/runs/s/budget", json={"usd": 1.5})
    assert raised.status_code == 200, raised.text
    assert raised.json() == {
        "ok": True,
        "budget_run_id": "s",
        "budget": {"usd": 1.5, "tokens": None},
    }
    asked(api, "s", "budget:3")  # the held step ran; the next asks again
    assert api.post("/api/runs/s/respond", json={"value": "stop"}).status_code == 200
    assert until_status(api, "s", "completed")["output"] == [0, 1, 2, -1]
    assert spend_samples(api) == {("budget.spender", "tokens"): 300, ("budget.spender", "usd"): 1.5}


def test_a_run_started_with_a_budget_and_raises_that_cannot_work(api: httpx.Client) -> None:
    capped = {"budget": {"usd": None, "tokens": 50}}
    started = api.post(
        "/api/workflows/budget.free/runs", json=capped, headers={"Idempotency-Key": "c"}
    )
    assert started.status_code == 201, started.text
    until_status(api, "c", "completed")
    assert api.get("/api/runs/c").json()["input"]["budget"] == {"usd": None, "tokens": 50}
    assert api.get("/api/runs/c/usage").json()["budget"] == {"usd": None, "tokens": 50}
    # An ended run's budget is raised all the same: runs below it may still spend.
    ended = api.post("/api/runs/c/budget", json={"tokens": 500})
    assert ended.status_code == 200, ended.text
    assert ended.json()["budget"] == {"usd": None, "tokens": 500}

    api.post("/api/workflows/budget.free/runs", json={}, headers={"Idempotency-Key": "f"})
    until_status(api, "f", "completed")
    free = api.post("/api/runs/f/budget", json={"usd": 5})
    assert (free.status_code, free.json()["code"]) == (409, "NO_BUDGET")
    assert api.get("/api/runs/f/usage").json()["budget"] is None

    for budget in ({"usd": -1}, {}, {"usd": 1, "euros": 2}, 5):
        bad = api.post("/api/workflows/budget.free/runs", json={"budget": budget})
        assert (bad.status_code, bad.json()["code"]) == (422, "INVALID_REQUEST"), bad.text
    assert spend_samples(api) == {("budget.free", "tokens"): 200, ("budget.free", "usd"): 1.0}
