"""OpenTelemetry spans: names, attributes, parentage and errors, in one process (the SDK's
in-memory exporter) and across processes, a SIGKILL and a resume (spans written to a
file by each worker)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import durable

from . import traced
from .processes import ROOT, durable_process, lines, sigkill, wait_for_line


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def spans(exporter: InMemorySpanExporter) -> list[dict[str, Any]]:
    return [traced.span_dict(span) for span in exporter.get_finished_spans()]


def named(found: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [span for span in found if span["name"] == name]


flaky_calls: list[int] = []


@durable.step(retry=durable.RetryPolicy(max_attempts=2, initial_interval=0.01))
async def flaky() -> str:
    flaky_calls.append(1)
    if len(flaky_calls) == 1:
        raise ConnectionError("the API hung up")
    return "ok"


@durable.step
async def broken() -> None:
    raise ValueError("no such account")


@durable.workflow
async def charge(ctx: durable.WorkflowContext, amount: int) -> str:
    answer = await flaky()
    total = await traced.helper(amount)
    return f"{answer} {total}"


@durable.workflow
async def refund(ctx: durable.WorkflowContext) -> None:
    await broken()


async def test_runs_and_step_attempts_are_spans_under_the_trace_that_started_them(
    db: Path | str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    flaky_calls.clear()
    request = provider.get_tracer("web")
    async with durable.Runtime(db, tracer_provider=provider) as rt:
        with request.start_as_current_span("POST /charge") as web:
            handle = await rt.start(charge, 21, run_id="charge-1")
        assert await handle.result() == "ok 42"
    found = spans(exporter)
    trace_id = f"{web.get_span_context().trace_id:032x}"
    assert {span["trace_id"] for span in found} == {trace_id}

    (start,) = named(found, "durable.start charge")
    (run,) = named(found, "durable.run charge")
    assert start["parent_id"] == f"{web.get_span_context().span_id:016x}"
    assert run["parent_id"] == start["span_id"]
    assert run["attributes"] == {
        "durable.run_id": "charge-1",
        "durable.workflow": "charge",
        "durable.status": "completed",
    }
    failed, succeeded = named(found, "durable.step flaky")
    for attempt, span in enumerate((failed, succeeded), start=1):
        assert span["parent_id"] == run["span_id"]
        assert span["attributes"]["durable.run_id"] == "charge-1"
        assert span["attributes"]["durable.workflow"] == "charge"
        assert span["attributes"]["durable.step"] == "flaky"
        assert span["attributes"]["durable.position"] == 0
        assert span["attributes"]["durable.attempt"] == attempt
    key = failed["attributes"]["durable.idempotency_key"]
    assert key == succeeded["attributes"]["durable.idempotency_key"] and key.endswith("-flaky")
    assert failed["status"] == "ERROR" and failed["attributes"]["durable.retried"] is True
    assert succeeded["status"] == "UNSET"
    (raw,) = [s for s in exporter.get_finished_spans() if s.name == "durable.step flaky"][:1]
    assert _exception_message(raw) == "the API hung up"

    # The child's spans hang under the parent's run.
    (child_start,) = named(found, "durable.start helper")
    (child_run,) = named(found, "durable.run helper")
    (child_step,) = named(found, "durable.step double")
    assert child_start["parent_id"] == run["span_id"]
    assert child_run["parent_id"] == child_start["span_id"]
    assert child_run["attributes"]["durable.run_id"] == "charge-1.1"
    assert child_step["parent_id"] == child_run["span_id"]


@durable.step
async def ask_model(prompt: str) -> str:
    durable.charge(usd=0.01, tokens=120)
    durable.charge(usd=0.02, tokens=30)
    return prompt.upper()


@durable.step
def ask_model_in_a_thread(prompt: str) -> str:
    durable.charge(tokens=5)
    return prompt


@durable.workflow(name="tracing.spender")
async def spender(ctx: durable.WorkflowContext) -> str:
    return await ask_model("hi") + await ctx.step(ask_model_in_a_thread, "!")


async def test_a_steps_spend_is_on_its_span(
    db: Path | str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with durable.Runtime(db, tracer_provider=provider) as rt:
        assert await (await rt.start(spender, run_id="spend-1")).result() == "HI!"
    (step,) = named(spans(exporter), "durable.step ask_model")
    assert step["attributes"]["durable.usd"] == pytest.approx(0.03)
    assert step["attributes"]["durable.tokens"] == 150
    (raw,) = [s for s in exporter.get_finished_spans() if s.name == "durable.step ask_model"]
    assert [dict(event.attributes or {}) for event in raw.events] == [
        {"durable.usd": 0.01, "durable.tokens": 120},
        {"durable.usd": 0.02, "durable.tokens": 30},
    ]
    (threaded,) = named(spans(exporter), "durable.step ask_model_in_a_thread")
    assert threaded["attributes"]["durable.tokens"] == 5


async def test_a_failed_run_and_its_step_record_the_error(
    db: Path | str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with durable.Runtime(db, tracer_provider=provider) as rt:
        handle = await rt.start(refund, run_id="refund-1")
        with pytest.raises(durable.WorkflowFailed):
            await handle.result()
    found = spans(exporter)
    (step,) = named(found, "durable.step broken")
    (run,) = named(found, "durable.run refund")
    assert step["status"] == "ERROR" and step["attributes"]["durable.retried"] is False
    assert run["status"] == "ERROR" and run["attributes"]["durable.status"] == "failed"
    (raw,) = [s for s in exporter.get_finished_spans() if s.name == "durable.run refund"]
    assert raw.status.description == "StepFailed: no such account"
    # Started outside any span: the start span is the root of the run's trace.
    (start,) = named(found, "durable.start refund")
    assert start["parent_id"] is None and run["parent_id"] == start["span_id"]


async def test_the_trace_is_kept_in_the_run_row_only_when_something_records(
    db: Path | str, provider: TracerProvider
) -> None:
    async with durable.Runtime(db, recover=False) as plain:
        await plain.start(refund, run_id="untraced")  # the global provider: no SDK set
        assert (await plain.store.get_run("untraced")).trace is None  # type: ignore[union-attr]
    async with durable.Runtime(db, recover=False, tracer_provider=provider) as client:
        with provider.get_tracer("web").start_as_current_span("request") as web:
            await client.start(refund, run_id="traced")
        record = await client.store.get_run("traced")
    assert record is not None and record.trace is not None
    traceparent = orjson.loads(record.trace)["traceparent"]
    assert traceparent.split("-")[1] == f"{web.get_span_context().trace_id:032x}"


def test_a_run_continues_its_trace_in_another_process_and_after_a_sigkill(
    db: Path | str, tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Started here under a request's span; a worker process runs it and is SIGKILLed
    inside a step; a second worker resumes it. The second worker's spans belong to
    the request's trace, under the span that started the run."""
    import asyncio

    effects, spans_file = tmp_path / "effects.log", tmp_path / "spans.jsonl"
    env = {"DURABLE_TEST_EFFECTS": str(effects), "DURABLE_TEST_SPANS": str(spans_file)}

    async def start() -> None:
        async with durable.Runtime(db, recover=False, tracer_provider=provider) as client:
            with provider.get_tracer("web").start_as_current_span("POST /flows"):
                await client.start(traced.traced_flow, 5, run_id="flow-1")

    asyncio.run(start())
    (web,) = [s for s in spans(exporter) if s["name"] == "POST /flows"]
    (start_span,) = named(spans(exporter), "durable.start traced_flow")

    first = durable_process(
        "--db", str(db), "worker", "tests.traced", ready="durable worker:", BLOCK="fetch", **env
    )
    wait_for_line(effects, "start fetch 1")
    sigkill(first)  # type: ignore[arg-type]
    second = durable_process(
        "--db", str(db), "worker", "tests.traced", ready="durable worker:", **env
    )

    async def result() -> Any:
        async with durable.Runtime(db, recover=False) as client:
            return await client.handle("flow-1").result(timeout=30)

    assert asyncio.run(result()) == 20
    second.terminate()
    second.communicate(timeout=30)

    found = [orjson.loads(line) for line in lines(spans_file)]
    assert {span["trace_id"] for span in found} == {web["trace_id"]}
    (run,) = named(found, "durable.run traced_flow")  # the killed worker ended no span
    assert run["parent_id"] == start_span["span_id"]
    (fetch,) = named(found, "durable.step fetch")
    assert fetch["attributes"]["durable.attempt"] == 2 and fetch["parent_id"] == run["span_id"]
    (child_run,) = named(found, "durable.run helper")
    (child_start,) = named(found, "durable.start helper")
    assert child_start["parent_id"] == run["span_id"]
    assert child_run["parent_id"] == child_start["span_id"]


def test_without_opentelemetry_installed_runs_are_not_traced_and_work() -> None:
    program = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import asyncio, durable\n"
        "@durable.step\n"
        "async def one() -> int: return 1\n"
        "@durable.workflow\n"
        "async def flow(ctx: durable.WorkflowContext) -> int: return await one()\n"
        "async def main() -> None:\n"
        "    async with durable.Runtime(':memory:') as rt:\n"
        "        assert rt.telemetry.tracing is None\n"
        "        print(await (await rt.start(flow)).result())\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_without_an_sdk_every_span_is_a_no_op() -> None:
    provider = trace.get_tracer_provider()
    assert not isinstance(provider, TracerProvider), "a test set the global SDK provider"
    tracing = durable.Runtime(":memory:").telemetry.tracing
    assert tracing is not None
    assert tracing.start_trace("flow", "run-1") is None


def _exception_message(span: ReadableSpan) -> str:
    (event,) = [event for event in span.events if event.name == "exception"]
    return str((event.attributes or {})["exception.message"])
