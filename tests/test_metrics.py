"""``GET /metrics``: parsed by the Prometheus client's parser after a known set of runs,
every count exact."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import durable
from durable.server import create_app

from .helpers import status_is
from .processes import durable_process
from .test_server import free_port

attempts: list[str] = []


@durable.step
async def add(a: int, b: int) -> int:
    return a + b


@durable.step(retry=durable.RetryPolicy(max_attempts=3, initial_interval=0.01))
async def wobbly() -> str:
    attempts.append("wobbly")
    if len(attempts) < 3:
        raise ConnectionError("try again")
    return "steady"


@durable.step(retry=durable.RetryPolicy(max_attempts=2, initial_interval=0.01))
async def doomed() -> None:
    raise ValueError("never")


@durable.workflow
async def sums(ctx: durable.WorkflowContext, n: int) -> int:
    return await add(await add(n, 1), 1)


@durable.workflow
async def shaky(ctx: durable.WorkflowContext) -> str:
    return await wobbly()


@durable.workflow
async def hopeless(ctx: durable.WorkflowContext) -> None:
    await doomed()


lane = durable.Queue("metrics-lane", concurrency=1)


@durable.workflow(queue=lane)
async def laned(ctx: durable.WorkflowContext) -> str:
    return str(await ctx.wait_for_user("go?"))


@durable.step
async def stuck() -> None:
    await asyncio.Event().wait()


@durable.workflow
async def hangs(ctx: durable.WorkflowContext) -> None:
    await stuck()


async def scrape(rt: durable.Runtime) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/metrics")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(page.text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


async def test_metrics_count_runs_steps_queues_and_takeovers_exactly(db: Path | str) -> None:
    attempts.clear()
    async with durable.Runtime(db, identity="metrics-a") as first:
        await first.start(hangs, run_id="hung")
        while not (await first.store.get_run("hung")) or "hung" not in first.loaded_runs:
            await asyncio.sleep(0.01)
        await first.abandon()  # as a SIGKILL would, its lease unreleased
    async with durable.Runtime(db, identity="metrics-a") as rt:  # takes the run back
        for n in range(3):
            await (await rt.start(sums, n)).result()
        assert await (await rt.start(shaky)).result() == "steady"
        with pytest.raises(durable.WorkflowFailed):
            await (await rt.start(hopeless)).result()
        for name in ("q1", "q2", "q3"):
            await rt.start(laned, run_id=name)
        await rt.wait_for_question("q1", timeout=10)
        await status_is(rt, "q1", "waiting")  # the question is journaled before the status
        samples = await scrape(rt)
        await rt.cancel("hung")

    def value(name: str, **labels: str) -> float:
        return samples[name, tuple(sorted(labels.items()))]

    assert value("durable_runs", workflow="sums", status="completed") == 3
    assert value("durable_runs", workflow="shaky", status="completed") == 1
    assert value("durable_runs", workflow="hopeless", status="failed") == 1
    assert value("durable_runs", workflow="laned", status="waiting") == 1
    assert value("durable_runs", workflow="laned", status="queued") == 2
    assert value("durable_runs", workflow="hangs", status="running") == 1

    assert value("durable_steps_started_total", workflow="sums", step="add") == 6
    assert value("durable_steps_completed_total", workflow="sums", step="add") == 6
    assert value("durable_steps_started_total", workflow="shaky", step="wobbly") == 3
    assert value("durable_steps_failed_total", workflow="shaky", step="wobbly") == 2
    assert value("durable_steps_retried_total", workflow="shaky", step="wobbly") == 2
    assert value("durable_steps_completed_total", workflow="shaky", step="wobbly") == 1
    assert value("durable_steps_started_total", workflow="hopeless", step="doomed") == 2
    assert value("durable_steps_failed_total", workflow="hopeless", step="doomed") == 2
    assert value("durable_steps_retried_total", workflow="hopeless", step="doomed") == 1
    assert (
        "durable_steps_completed_total",
        (("step", "doomed"), ("workflow", "hopeless")),
    ) not in samples
    # The taken-back run's step started again here; its first attempt was the other life's.
    assert value("durable_steps_started_total", workflow="hangs", step="stuck") == 1

    assert value("durable_runs_ended_total", workflow="sums", status="completed") == 3
    assert value("durable_runs_ended_total", workflow="hopeless", status="failed") == 1
    assert value("durable_lease_takeovers_total") == 1
    assert value("durable_queue_depth", queue="metrics-lane") == 2
    assert value("durable_queue_running", queue="metrics-lane") == 1
    runs_total = sum(v for (name, _), v in samples.items() if name == "durable_runs")
    assert runs_total == 3 + 1 + 1 + 3 + 1


def test_durable_serve_answers_metrics_behind_its_token(db: Path | str, tmp_path: Path) -> None:
    port = free_port()
    proc = durable_process(
        *("--db", str(db), "serve", "tests.child", "--port", str(port), "--token", "s3cret-token"),
        ready="durable serve:",
        DURABLE_TEST_EFFECTS=str(tmp_path / "effects.log"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/metrics").status_code == 401
            headers = {"Authorization": "Bearer s3cret-token"}
            started = client.post("/api/workflows/child.three_steps/runs", json={}, headers=headers)
            assert started.status_code == 201, started.text
            run_id = started.json()["run_id"]
            deadline = time.monotonic() + 30
            while (
                client.get(f"/api/runs/{run_id}", headers=headers).json()["status"] != "completed"
            ):
                assert time.monotonic() < deadline, "the run did not complete"
            page = client.get("/metrics", headers=headers)
        families = {family.name: family for family in text_string_to_metric_families(page.text)}
        started_steps = {
            sample.labels["step"]: sample.value
            for sample in families["durable_steps_started"].samples
            if sample.name == "durable_steps_started_total"
        }
        assert started_steps == {"first": 1, "second": 1, "third": 1}
        (completed,) = [
            s
            for s in families["durable_runs"].samples
            if s.labels["workflow"] == "child.three_steps"
        ]
        assert completed.labels["status"] == "completed" and completed.value == 1
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
