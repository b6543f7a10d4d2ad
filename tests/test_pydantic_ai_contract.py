"""pydantic-ai's expectations of a durable engine, checked against ``Durability``.

What pydantic-ai's ``durable_exec`` guide asks of an engine and what its DBOS, Temporal and
Prefect suites check, for ``durable``: pinned step names, every entry point (``run``,
``iter``, ``run_stream``, ``run_stream_events``, ``run_sync``) inside a workflow, deps,
structured output with a validator's retry, usage kept across a replay, parallel tool calls
replayed in order, deferred tools, several agents in one run, and plain pydantic-ai outside a
workflow. A replay is a real one: the runtime is closed while the run waits and a new one on
the same journal rebuilds the agent's run from it (both backends), or ``explore_crashes``
crashes it after every commit (SQLite).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.capabilities import ProcessEventStream
from pydantic_ai.durable_exec import (
    CapabilityOperationId,
    DurableOperationId,
    JournalOperationNamer,
    ModelCancelSuspendedResponseId,
    ModelCompactMessagesId,
    ModelCountTokensId,
    ModelRequestId,
    ToolsetCallToolId,
    ToolsetGetInstructionsId,
    ToolsetValidateToolArgumentsId,
)
from pydantic_ai.exceptions import ModelRetry
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import FunctionToolset

import durable
from durable.integrations.pydantic_ai import Durability
from durable.testing import explore_crashes

from .agent_contract import CALLS, completed_steps, run_twice, tool_returns

ITEMS = {"apple": 1, "pear": 2, "fig": 3}


@dataclass
class Shop:
    """The run's deps: live objects (a lock is not JSON), handed to each step as they are."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    currency: str = "EUR"


class Receipt(BaseModel):
    items: list[str]
    total: int
    currency: str


def _next_calls(messages: list[ModelMessage]) -> list[ToolCallPart]:
    """Three prices at once, then a receipt with a wrong total, then the right one."""
    done = tool_returns(messages)
    if "c-fig" not in done:
        return [ToolCallPart("price", {"item": item}, tool_call_id=f"c-{item}") for item in ITEMS]
    total = sum(ITEMS.values()) if "r-1" in done else 0
    receipt = {"items": list(ITEMS), "total": total, "currency": "EUR"}
    return [ToolCallPart("final_result", receipt, tool_call_id="r-2" if total else "r-1")]


def _shop_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    CALLS.append("model")
    return ModelResponse(parts=list(_next_calls(messages)))


async def _shop_stream(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[DeltaToolCalls]:
    CALLS.append("model")
    calls = _next_calls(messages)
    yield {
        index: DeltaToolCall(
            name=call.tool_name, json_args=call.args_as_json_str(), tool_call_id=call.tool_call_id
        )
        for index, call in enumerate(calls)
    }


def build_shop(name: str = "shop", **durability: Any) -> Agent[Shop, Receipt]:
    agent = Agent(
        FunctionModel(_shop_model, stream_function=_shop_stream),
        name=name,
        deps_type=Shop,
        output_type=Receipt,
        capabilities=[Durability(**durability)],
    )

    @agent.tool
    async def price(ctx: RunContext[Shop], item: str) -> int:
        """The price of an item; the later items finish first."""
        assert durable.in_step() and isinstance(ctx.deps.lock, asyncio.Lock)
        for _ in range(10 - 5 * list(ITEMS).index(item)):
            await asyncio.sleep(0)  # yields only: fig finishes first, apple last
        CALLS.append(f"price:{item}")
        return ITEMS[item]

    @agent.output_validator
    def check_total(ctx: RunContext[Shop], receipt: Receipt) -> Receipt:
        if receipt.total != sum(ITEMS.values()):
            raise ModelRetry(f"the total is {sum(ITEMS.values())}")
        return receipt

    return agent


shop = build_shop()
shop_in_turn = build_shop("shop_in_turn", parallel_tool_calls="sequential")


def summary(result: AgentRunResult[Receipt]) -> dict[str, Any]:
    """What a replay must reproduce: the output, the usage, the conversation's shape."""
    usage = result.usage
    return {
        "output": result.output.model_dump(),
        "usage": [usage.requests, usage.tool_calls, usage.input_tokens, usage.output_tokens],
        "messages": [m.kind for m in result.all_messages()],
        "run_id": result.run_id,
    }


@durable.workflow(name="contract.shop")
async def buy(ctx: durable.WorkflowContext, entry: str = "run", ask: bool = True) -> dict[str, Any]:
    """Runs ``shop`` through one entry point, then asks a question (the replay point)."""
    if entry == "run":
        seen = summary(await shop.run("buy", deps=Shop()))
    elif entry == "iter":
        async with shop.iter("buy", deps=Shop()) as run:
            nodes = [type(node).__name__ async for node in run]
        assert run.result is not None
        seen = {**summary(run.result), "nodes": nodes}
    else:
        agent = shop_in_turn if entry == "sequential" else shop
        seen = summary(await agent.run("buy", deps=Shop()))
    if ask:
        await ctx.wait_for_user(json.dumps(seen))
    else:  # explore_crashes compares runs of their own ids; the agent's run_id includes it
        seen.pop("run_id")
    return seen


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


MODEL = "shop__model.request_stream"
PRICE = "shop__function_toolset__<agent>.call_tool:price"


@pytest.mark.parametrize("entry", ["run", "iter"])
async def test_a_replayed_run_returns_the_same_output_usage_and_conversation(
    db: Path | str, entry: str
) -> None:
    output = await run_twice(db, buy, entry)
    assert output["output"] == {"items": list(ITEMS), "total": 6, "currency": "EUR"}
    assert output["usage"][:2] == [3, 3], "three requests (one retried output), three tools"
    assert output["messages"] == ["request", "response"] * 3 + ["request"]
    assert CALLS.count("model") == 3
    assert sorted(c for c in CALLS if c.startswith("price")) == sorted(f"price:{i}" for i in ITEMS)
    if entry == "iter":
        assert output["nodes"][0] == "UserPromptNode" and output["nodes"][-1] == "End"


async def test_parallel_tool_calls_take_their_steps_in_call_order(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(buy, run_id="order")
        await rt.wait_for_question("order", timeout=30)
        history = await rt.history("order")
    assert [c for c in CALLS if c.startswith("price")] == ["price:fig", "price:pear", "price:apple"]
    started = [e["name"] for e in history if e["kind"] == "step.started"]
    assert started[:4] == [MODEL, PRICE, PRICE, PRICE]
    positions = {e["position"]: e for e in history if e["kind"] == "step.completed"}
    assert [positions[p]["name"] for p in sorted(positions)][:4] == [MODEL, PRICE, PRICE, PRICE]


async def test_sequential_tool_calls_run_one_at_a_time_and_replay(db: Path | str) -> None:
    await run_twice(db, buy, "sequential")
    assert [c for c in CALLS if c.startswith("price")] == [f"price:{i}" for i in ITEMS]


@pytest.mark.parametrize("entry", ["run", "sequential"])
async def test_every_crash_point_of_a_parallel_structured_run_recovers(entry: str) -> None:
    report = await explore_crashes(buy, entry, False)
    assert report.outcome["output"]["total"] == 6
    assert len(report.crash_points) > 10 and any(p.rerun_steps for p in report.crash_points)


# -- step names are compatibility data: a rename strands runs in flight ---------------------


def _pins_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        return ModelResponse(
            parts=[ToolCallPart("lookup", {"key": "k"}), ToolCallPart("forecast", {"city": "Oslo"})]
        )
    return ModelResponse(parts=[TextPart("pinned")])


async def _pins_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    response = _pins_model(messages, info)
    if isinstance(response.parts[0], TextPart):
        yield response.parts[0].content
        return
    yield {
        index: DeltaToolCall(name=part.tool_name, json_args=part.args_as_json_str())
        for index, part in enumerate(response.parts)
        if isinstance(part, ToolCallPart)
    }


def _extra_tools(ctx: RunContext[None]) -> FunctionToolset[None]:
    tools = FunctionToolset[None]()

    @tools.tool_plain
    async def forecast(city: str) -> str:
        return f"sunny in {city}"

    return tools


async def _ignore_events(ctx: RunContext[None], events: Any) -> None:
    async for _ in events:
        pass


def build_pinned(name: str, **durability: Any) -> Agent[None, str]:
    from pydantic_ai.toolsets import DynamicToolset

    agent = Agent(
        FunctionModel(_pins_model, stream_function=_pins_stream),
        name=name,
        toolsets=[DynamicToolset(_extra_tools, id="extra")],
        capabilities=[Durability(**durability)],
    )

    @agent.tool_plain
    async def lookup(key: str) -> str:
        return key.upper()

    return agent


pinned_plain = build_pinned("pins", stream=False)
pinned_live = build_pinned("pins_live", event_stream_handler=_ignore_events)

PINNED_NAMES = {
    "pins__model.request",
    "pins__function_toolset__<agent>.call_tool:lookup",
    "pins__dynamic_toolset__extra.get_tools",
    "pins__dynamic_toolset__extra.call_tool:forecast",
    "pins_live__model.request_stream",
    "pins_live__event_stream_handler",
    "pins_live__function_toolset__<agent>.call_tool:lookup",
    "pins_live__dynamic_toolset__extra.get_tools",
    "pins_live__dynamic_toolset__extra.call_tool:forecast",
}
"""Every step name the two agents make. Never edit these to follow a rename: a run in flight
replays by them, so a changed name is a migration to review, not a test to update."""


@durable.workflow(name="contract.pins")
async def pins(ctx: durable.WorkflowContext) -> list[str]:
    return [(await agent.run("go")).output for agent in (pinned_plain, pinned_live)]


async def test_the_step_names_are_pinned(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        assert await (await rt.start(pins, run_id="pins")).result(timeout=30) == ["pinned"] * 2
        names = set(completed_steps(await rt.history("pins")))
    assert names == PINNED_NAMES


def test_the_names_of_operations_no_test_run_makes_are_pinned_too() -> None:
    """Durability names its steps with pydantic-ai's ``JournalOperationNamer`` (the test
    above checks the link); these pin the operations an offline run does not reach, so a
    pydantic-ai upgrade that renames one fails here rather than in runs in flight."""
    namer = JournalOperationNamer("support")
    gpt = "gpt"
    operations: list[tuple[DurableOperationId, str | None]] = [
        (ModelRequestId("other", streaming=True, model_name=gpt), None),
        (ModelCancelSuspendedResponseId(model_name=gpt), None),
        (ModelCompactMessagesId(model_name=gpt), None),
        (ModelCountTokensId("other", model_name=gpt), None),
        (ToolsetGetInstructionsId("docs"), None),
        (ToolsetValidateToolArgumentsId("function", toolset_id="<agent>"), None),
        (ToolsetCallToolId("mcp", toolset_id="docs"), "search"),
        (CapabilityOperationId("workspace", operation="call"), None),
    ]
    names = {namer.invocation_name(op, label=label).operation_name for op, label in operations}
    assert names == {
        "support__model.request_stream.other",
        "support__model.cancel_suspended_response",
        "support__model.compact_messages",
        "support__model.count_tokens.other",
        "support__mcp_server__docs.get_instructions",
        "support__function_toolset__<agent>.validate_args",
        "support__mcp_server__docs.call_tool",
        "support__capability__workspace.call",
    }


# -- the entry points pydantic-ai has, inside a workflow ------------------------------------


chat = Agent(TestModel(custom_output_text="hello world"), name="chat", capabilities=[Durability()])


@durable.workflow(name="contract.streams")
async def streams(ctx: durable.WorkflowContext) -> dict[str, Any]:
    async with chat.run_stream("hi") as streamed:
        chunks = [chunk async for chunk in streamed.stream_text(debounce_by=None)]
        text = await streamed.get_output()
    async with chat.run_stream_events("hi") as events:
        kinds = [event.event_kind async for event in events]
    seen = {"chunks": chunks, "text": text, "kinds": kinds}
    await ctx.wait_for_user(json.dumps(seen))
    return seen


async def test_run_stream_and_run_stream_events_replay_whole_responses(db: Path | str) -> None:
    """Inside a workflow the response reaches the caller after its step, whole: the live
    tokens went to the durable stream (and the event handler) inside the step."""
    seen = await run_twice(db, streams)
    assert seen["chunks"] == ["hello world"] and seen["text"] == "hello world"
    assert seen["kinds"][0] == "part_start" and seen["kinds"][-1] == "agent_run_result"
    assert "part_delta" not in seen["kinds"], "a replayed part is one event with its content"


@durable.workflow(name="contract.run_sync")
async def run_sync_inside(ctx: durable.WorkflowContext) -> str:
    return chat.run_sync("hi").output


async def test_run_sync_inside_a_workflow_fails_the_run_at_once(db: Path | str) -> None:
    """Workflows are async: ``run_sync`` cannot drive the running loop. The run fails at the
    call, with nothing journaled, rather than hang or be retried."""
    async with durable.Runtime(db) as rt:
        handle = await rt.start(run_sync_inside, run_id="sync")
        with pytest.raises(durable.WorkflowFailed, match="This event loop is already running"):
            await handle.result(timeout=30)
        assert completed_steps(await rt.history("sync")) == []


per_run: list[tuple[str, bool]] = []


async def _per_run_handler(
    ctx: RunContext[object], events: AsyncIterable[AgentStreamEvent]
) -> None:
    async for event in events:
        per_run.append((event.event_kind, durable.in_step()))


@durable.workflow(name="contract.handlers")
async def handlers(ctx: durable.WorkflowContext) -> str:
    return (await chat.run("hi", event_stream_handler=_per_run_handler)).output


async def test_a_per_run_event_handler_sees_the_events_in_workflow_code(db: Path | str) -> None:
    """A handler passed to ``agent.run`` is workflow code, as on DBOS and Temporal: it sees
    each event (a replay included); only ``Durability``'s own handler runs in steps, and
    the run's durable stream still gets the tokens."""
    per_run.clear()
    async with durable.Runtime(db) as rt:
        assert await (await rt.start(handlers, run_id="h")).result(timeout=30) == "hello world"
        streamed = [e for e in await rt.history("h") if e["kind"] == "stream.value"]
    assert streamed and all(e["name"] == "agent:chat" for e in streamed)
    kinds = [kind for kind, _ in per_run]
    assert kinds[0] == "part_start" and "final_result" in kinds
    assert not any(in_step for _, in_step in per_run)


async def test_process_event_stream_sees_the_events_in_workflow_code(db: Path | str) -> None:
    seen: list[bool] = []

    async def collect(ctx: RunContext[object], events: AsyncIterable[AgentStreamEvent]) -> None:
        async for _ in events:
            seen.append(durable.in_step())

    agent = Agent(
        TestModel(custom_output_text="ok"),
        name="processed",
        capabilities=[ProcessEventStream(collect), Durability()],
    )

    @durable.workflow(name="contract.processed")
    async def processed(ctx: durable.WorkflowContext) -> str:
        return (await agent.run("hi")).output

    async with durable.Runtime(db) as rt:
        assert await (await rt.start(processed)).result(timeout=30) == "ok"
    assert seen and not any(seen)
