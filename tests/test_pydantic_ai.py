"""durable.integrations.pydantic_ai: a real pydantic-ai Agent, driven offline, in workflows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError, ModelRetry, UserError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import DeferredToolRequests, RunContext
from pydantic_ai.toolsets import DynamicToolset, FunctionToolset

import durable
from durable.integrations.pydantic_ai import Durability
from durable.testing import explore_crashes

from .processes import cli, durable_process
from .refund_agent import (
    ANSWER_TOKENS,
    DENIED_TOKENS,
    MODEL,
    build_agent,
    support,
    support_handled,
)
from .test_server import free_port

QUESTION = 'Agent \'support\' asks to call refund({"order_id":"o-7","cents":1999}). Approve?'
MODEL_STEP = "support__model.request_stream"
TOOL_STEP = "support__function_toolset__<agent>.call_tool:"


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "effects"
    path.touch()
    monkeypatch.setenv("DURABLE_TEST_EFFECTS", str(path))
    return path


def lines(effects: Path, prefix: str) -> list[str]:
    return [line for line in effects.read_text().splitlines() if line.startswith(prefix)]


def streamed_text(history: list[dict[str, Any]]) -> str:
    """The text the agent's event stream carries: part starts and deltas of text parts."""
    text = ""
    for event in history:
        if event["kind"] != "stream.value" or event["name"] != "agent:support":
            continue
        value = event["payload"]["value"]
        if value["event_kind"] == "part_start" and value["part"]["part_kind"] == "text":
            text += value["part"]["content"]
        elif value["event_kind"] == "part_delta" and value["delta"]["part_delta_kind"] == "text":
            text += value["delta"]["content_delta"]
    return text


async def test_an_approved_refund_runs_once_with_every_call_a_named_step(
    db: Path | str, effects: Path
) -> None:
    async with durable.Runtime(db) as rt:
        run = await rt.start(support, "refund my order", run_id="refund-1")
        wait = await rt.wait_for_question("refund-1", timeout=30)
        assert (wait.question, wait.input_type) == (QUESTION, "approval")
        assert [option["id"] for option in wait.options or []] == ["yes", "no"]
        assert lines(effects, "refund call") == [], "the refund waits for its approval"
        assert (await rt.check()).diverged_runs == [], "the deploy gate replays the agent"
        await rt.respond("refund-1", "yes")
        assert await run.result(timeout=30) == "".join(ANSWER_TOKENS)
        history = await rt.history("refund-1")
    completed = [event["name"] for event in history if event["kind"] == "step.completed"]
    assert completed == [
        MODEL_STEP,
        TOOL_STEP + "lookup_order",
        TOOL_STEP + "check_policy",
        MODEL_STEP,
        TOOL_STEP + "refund",
        MODEL_STEP,
    ]
    assert len(lines(effects, "model start")) == 3
    assert len(lines(effects, "refund call")) == 1
    assert streamed_text(history) == "".join(ANSWER_TOKENS)


async def test_a_denied_refund_is_never_called_and_the_model_is_told(
    db: Path | str, effects: Path
) -> None:
    async with durable.Runtime(db) as rt:
        run = await rt.start(support, "refund my order", run_id="refund-2")
        await rt.wait_for_question("refund-2", timeout=30)
        with pytest.raises(durable.InvalidResponse):
            await rt.respond("refund-2", "maybe")
        await rt.respond("refund-2", "no")
        assert await run.result(timeout=30) == "".join(DENIED_TOKENS)
    assert lines(effects, "refund call") == []


@pytest.mark.parametrize("workflow", [support, support_handled], ids=["stream", "your handler"])
async def test_parallel_tool_calls_and_the_approval_survive_a_crash_at_every_commit(
    workflow: durable.Workflow[..., str], effects: Path
) -> None:
    report = await explore_crashes(workflow, "refund my order", answers={QUESTION: "yes"})
    assert len(report.crash_points) > 20
    assert any(point.rerun_steps for point in report.crash_points)


async def test_outside_a_workflow_the_agent_is_plain_pydantic_ai(effects: Path) -> None:
    result = await build_agent().run("refund my order")
    assert isinstance(result.output, DeferredToolRequests)
    assert [call.tool_name for call in result.output.approvals] == ["refund"]
    assert all(" outside " in line for line in lines(effects, "model start"))


async def test_a_tool_opts_out_of_its_step_and_another_sets_its_own_options(
    durable_runtime: durable.Runtime,
) -> None:
    agent = Agent(
        FunctionModel(lambda messages, info: _call_both_then_answer(messages)),
        name="notes",
        capabilities=[Durability(stream=False)],
    )
    seen: dict[str, bool] = {}

    @agent.tool_plain(durable=False)
    async def note(text: str) -> str:
        seen["note"] = durable.in_step()
        return "noted"

    @agent.tool_plain(metadata={"durable": {"at_most_once": True}})
    async def pay(cents: int) -> str:
        seen["pay"] = durable.in_step()
        return "paid"

    @durable.workflow(name="test.notes")
    async def notes(ctx: durable.WorkflowContext) -> str:
        return (await agent.run("go")).output

    assert await notes() == "done"
    assert seen == {"note": False, "pay": True}
    run = (await durable_runtime.list_runs(workflow="test.notes"))[0]
    names = [e["name"] for e in await durable_runtime.history(run.run_id)]
    assert "notes__function_toolset__<agent>.call_tool:pay" in names
    assert not any(name.endswith(":note") for name in names)


def _call_both_then_answer(messages: list[ModelMessage]) -> ModelResponse:
    from pydantic_ai.messages import ToolCallPart

    if len(messages) == 1:
        return ModelResponse(
            parts=[ToolCallPart("note", {"text": "hi"}), ToolCallPart("pay", {"cents": 5})]
        )
    return ModelResponse(parts=[TextPart("done")])


async def test_a_failed_model_request_is_retried_as_its_step_says(
    durable_runtime: durable.Runtime,
) -> None:
    attempts: list[int] = []

    def flaky(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        attempts.append(durable.step_info().attempt)
        if len(attempts) == 1:
            raise ModelHTTPError(503, "flaky-model", "overloaded")
        return ModelResponse(parts=[TextPart("fine")])

    retry = durable.RetryPolicy(max_attempts=2, initial_interval=0)
    agent = Agent(
        FunctionModel(flaky),
        name="flaky",
        capabilities=[Durability(stream=False, model_step={"retry": retry})],
    )

    @durable.workflow(name="test.flaky")
    async def ask(ctx: durable.WorkflowContext) -> str:
        return (await agent.run("hello")).output

    assert await ask() == "fine"
    assert attempts == [1, 2]


async def test_events_reach_your_handler_inside_steps(durable_runtime: durable.Runtime) -> None:
    kinds: list[str] = []

    async def handler(ctx: RunContext[None], events: Any) -> None:
        async for event in events:
            assert durable.in_step(), "the handler runs inside a step"
            kinds.append(event.event_kind)

    agent = Agent(MODEL, name="support", capabilities=[Durability(event_stream_handler=handler)])

    @durable.workflow(name="test.handled")
    async def handled(ctx: durable.WorkflowContext) -> object:
        return (await agent.run("refund my order")).output

    await handled()
    assert "part_delta" in kinds and "function_tool_call" in kinds


async def test_the_agents_sleeps_are_durable_timers(durable_runtime: durable.Runtime) -> None:
    agent = Agent(MODEL, name="sleepy", capabilities=[Durability()])
    durability = Durability.from_agent(agent)
    assert durability is not None

    @durable.workflow(name="test.sleepy")
    async def sleepy(ctx: durable.WorkflowContext) -> float:
        before = ctx.now()
        await durability.durable_sleep(3600)
        return (ctx.now() - before).total_seconds()

    assert await sleepy() >= 3600
    run = (await durable_runtime.list_runs(workflow="test.sleepy"))[0]
    kinds = [e["kind"] for e in await durable_runtime.history(run.run_id)]
    assert any(kind.startswith("sleep") for kind in kinds), kinds


def test_bad_options_are_refused_with_what_to_write() -> None:
    with pytest.raises(UserError, match=r"unknown keys \['retries'\].*'retry'"):
        Durability(tool_step=cast(Any, {"retries": 3}))
    with pytest.raises(UserError, match=r"durable\.RetryPolicy"):
        Durability(model_step=cast(Any, {"retry": 3}))
    with pytest.raises(UserError, match=r"tool_step: .*timeout"):
        Durability(tool_step={"timeout": -1})
    with pytest.raises(UserError, match="non-empty key"):
        Durability(stream="")
    with pytest.raises(UserError, match="parallel_tool_calls"):
        Durability(parallel_tool_calls="random")  # type: ignore[arg-type]


def test_the_approval_is_answered_over_http_while_durable_serve_runs_the_agent(
    db: Path | str, effects: Path
) -> None:
    port = free_port()
    args = ("--db", str(db), "serve", "tests.refund_agent", "--port", str(port))
    server = durable_process(*args, ready="durable serve:", DURABLE_TEST_EFFECTS=str(effects))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
        started = api.post(
            "/api/workflows/refund_agent.support/runs",
            json={"args": ["refund my order"]},
            headers={"Idempotency-Key": "refund-http"},
        )
        assert started.status_code == 201, started.text
        waits = poll(lambda: api.get("/api/runs/refund-http/waits").json())
        assert [(w["question"], w["input_type"]) for w in waits] == [(QUESTION, "approval")]
        answered = api.post("/api/runs/refund-http/respond", json={"value": "yes"})
        assert answered.status_code == 200, answered.text
        run = poll(lambda: _ended(api.get("/api/runs/refund-http").json()))
    server.terminate()
    server.communicate(timeout=30)
    assert (run["status"], run["output"]) == ("completed", "".join(ANSWER_TOKENS))
    assert len(lines(effects, "refund call")) == 1


def _ended(run: dict[str, Any]) -> dict[str, Any] | None:
    return run if run["status"] in ("completed", "failed") else None


def poll(read: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := read():
            return found
        time.sleep(0.05)
    raise AssertionError(f"nothing came within {seconds} s")


async def test_a_dynamic_toolsets_listing_and_calls_are_steps(
    durable_runtime: durable.Runtime,
) -> None:
    """The path MCP servers take too (a toolset that lists its own tools)."""
    listed: list[bool] = []

    def weather_tools(ctx: RunContext[None]) -> FunctionToolset[None]:
        listed.append(durable.in_step())
        tools = FunctionToolset[None]()

        @tools.tool_plain
        async def forecast(city: str) -> str:
            assert durable.in_step()
            return f"sunny in {city}"

        return tools

    agent = Agent(
        FunctionModel(_ask_forecast),
        name="weather",
        toolsets=[DynamicToolset(weather_tools, id="weather")],
        capabilities=[Durability(stream=False)],
    )

    @durable.workflow(name="test.weather")
    async def weather(ctx: durable.WorkflowContext) -> str:
        return (await agent.run("weather?")).output

    assert await weather() == "sunny in Oslo"
    run = (await durable_runtime.list_runs(workflow="test.weather"))[0]
    names = {e["name"] for e in await durable_runtime.history(run.run_id)}
    assert {
        "weather__dynamic_toolset__weather.get_tools",
        "weather__dynamic_toolset__weather.call_tool:forecast",
    } <= names, names
    assert listed and all(listed), "the toolset is built inside its listing step"


def _ask_forecast(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    from pydantic_ai.messages import ToolCallPart, ToolReturnPart

    returned = [
        part.content
        for message in messages
        for part in getattr(message, "parts", [])
        if isinstance(part, ToolReturnPart)
    ]
    if not returned:
        return ModelResponse(parts=[ToolCallPart("forecast", {"city": "Oslo"})])
    return ModelResponse(parts=[TextPart(str(returned[0]))])


async def test_a_tools_model_retry_goes_back_to_the_model_and_is_journaled(
    durable_runtime: durable.Runtime,
) -> None:
    agent = Agent(TestModel(), name="picky", capabilities=[Durability(stream=False)])
    tries: list[int] = []

    @agent.tool_plain
    async def pick(n: int) -> str:
        tries.append(n)
        if len(tries) == 1:
            raise ModelRetry("try again")
        return "picked"

    @durable.workflow(name="test.picky")
    async def picky(ctx: durable.WorkflowContext) -> str:
        return (await agent.run("pick")).output

    assert "picked" in await picky()
    run = (await durable_runtime.list_runs(workflow="test.picky"))[0]
    steps = [
        e
        for e in await durable_runtime.history(run.run_id)
        if e["kind"] == "step.completed" and e["name"].endswith(":pick")
    ]
    assert len(tries) == len(steps) == 2, "the retry is the first call's journaled result"


async def test_the_approval_is_answered_from_the_command_line(
    db: Path | str, effects: Path
) -> None:
    async with durable.Runtime(db) as rt:
        run = await rt.start(support, "refund my order", run_id="refund-cli")
        await rt.wait_for_question("refund-cli", timeout=30)
        listed = await asyncio.to_thread(cli, db, "show", "refund-cli")
        assert QUESTION in listed.stdout, listed.stdout + listed.stderr
        answered = await asyncio.to_thread(cli, db, "respond", "refund-cli", "yes")
        assert answered.returncode == 0, answered.stderr
        assert await run.result(timeout=30) == "".join(ANSWER_TOKENS)
    assert len(lines(effects, "refund call")) == 1


class PricedModel(FunctionModel):
    """An offline model that says it is OpenAI's gpt-4o, so genai-prices can price it."""

    @property
    def system(self) -> str:
        return "openai"


async def test_model_usage_is_charged_to_the_budget_and_priced(db: Path | str) -> None:
    async def reply(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        if len(messages) == 1:
            yield {0: DeltaToolCall(name="lookup", json_args='{"order_id": "A1"}')}
        else:
            yield "Order A1 is on its way."

    model = PricedModel(stream_function=reply, model_name="gpt-4o")
    agent = Agent(model, name="priced", capabilities=[Durability()])

    @agent.tool_plain
    def lookup(order_id: str) -> str:
        return f"{order_id}: shipped"

    @durable.workflow(name="pai.priced", budget=durable.Budget(usd=100.0))
    async def priced(ctx: durable.WorkflowContext) -> list[ModelMessage]:
        return (await agent.run("Where is A1?")).all_messages()

    async with durable.Runtime(db) as rt:
        messages = await (await rt.start(priced, run_id="pp")).result()
        usage = await rt.usage("pp")
    responses = [m for m in messages if isinstance(m, ModelResponse)]
    assert len(responses) == 2
    assert usage.tokens == sum(r.usage.input_tokens + r.usage.output_tokens for r in responses)
    assert usage.usd == pytest.approx(sum(float(r.cost().total_price) for r in responses))
    assert usage.usd > 0
    assert [s.step for s in usage.by_step.values()] == ["priced__model.request_stream"] * 2
