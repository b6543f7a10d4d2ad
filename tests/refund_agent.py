"""A refund agent on pydantic-ai, driven offline, for the integration's tests and crash child.

The scripted model first looks the order up and checks the refund policy (two tool calls
in one response, run in parallel), then asks to refund (a tool that needs a person's
approval), then answers in a few streamed tokens. The model and the refund API append a
line per call to the EFFECTS file (``DURABLE_TEST_EFFECTS``) with the step position they
ran at, so a test can tell which calls ran again after a crash.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterable, AsyncIterator

from pydantic_ai import Agent
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.tools import DeferredToolRequests, RunContext

import durable
from durable.integrations.pydantic_ai import Durability

ORDER = "o-7"
CENTS = 1999
ANSWER_TOKENS = ["Refunded ", "1999 ", "cents ", "for ", "o-7."]
DENIED_TOKENS = ["The ", "refund ", "was ", "denied."]


def effect(line: str) -> None:
    """Append one line to the effects file, flushed and synced (it must survive SIGKILL)."""
    path = os.environ.get("DURABLE_TEST_EFFECTS")
    if not path:
        return
    with open(path, "a") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def where() -> str:
    """Which step position and attempt the code runs at, and in which process."""
    if not durable.in_step():
        return f"outside pid={os.getpid()}"
    info = durable.step_info()
    return f"{info.position} {info.attempt} pid={os.getpid()}"


async def dawdle() -> None:
    """A few milliseconds, so a kill at a random moment can land inside a call."""
    await asyncio.sleep(random.random() * float(os.environ.get("DURABLE_TEST_DAWDLE", "0")))


def tool_results(messages: list[ModelMessage]) -> dict[str, str]:
    """What each tool returned to the model, by tool name."""
    return {
        part.tool_name: part.model_response_str()
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if part.part_kind == "tool-return"
    }


def answer(messages: list[ModelMessage]) -> list[str]:
    """The scripted model's final answer, in tokens."""
    denied = "denied" in tool_results(messages).get("refund", "")
    return DENIED_TOKENS if denied else ANSWER_TOKENS


def next_calls(messages: list[ModelMessage]) -> list[ToolCallPart] | None:
    """The tool calls the scripted model makes next, or None when it answers."""
    done = tool_results(messages)
    if "lookup_order" not in done:
        return [
            ToolCallPart("lookup_order", {"order_id": ORDER}, tool_call_id="call-lookup"),
            ToolCallPart("check_policy", {"order_id": ORDER}, tool_call_id="call-policy"),
        ]
    if "refund" not in done:
        return [ToolCallPart("refund", {"order_id": ORDER, "cents": CENTS}, tool_call_id="call-1")]
    return None


async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    effect(f"model start {where()}")
    await dawdle()
    calls = next_calls(messages)
    effect(f"model end {where()}")
    if calls is None:
        return ModelResponse(parts=[TextPart("".join(answer(messages)))])
    return ModelResponse(parts=list(calls))


async def respond_streamed(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    effect(f"model start {where()}")
    calls = next_calls(messages)
    if calls is None:
        for token in answer(messages):
            await dawdle()
            yield token
    else:
        await dawdle()
        yield {
            index: DeltaToolCall(
                name=call.tool_name,
                json_args=call.args_as_json_str(),
                tool_call_id=call.tool_call_id,
            )
            for index, call in enumerate(calls)
        }
    effect(f"model end {where()}")


MODEL = FunctionModel(respond, stream_function=respond_streamed)


def refund_api(order_id: str, cents: int, key: str) -> str:
    """A payment API that, like Stripe's, makes one refund per idempotency key."""
    effect(f"refund call {where()} key={key}")
    return f"re_{order_id}_{cents}"


def build_agent(**durability: object) -> Agent[None, str | DeferredToolRequests]:
    agent: Agent[None, str | DeferredToolRequests] = Agent(
        MODEL,
        name="support",
        output_type=[str, DeferredToolRequests],
        capabilities=[Durability(**durability)],  # type: ignore[arg-type]
    )

    @agent.tool_plain
    async def lookup_order(order_id: str) -> dict[str, object]:
        effect(f"tool lookup_order {where()}")
        await dawdle()
        return {"order_id": order_id, "cents": CENTS, "status": "delivered"}

    @agent.tool_plain
    async def check_policy(order_id: str) -> str:
        effect(f"tool check_policy {where()}")
        await dawdle()
        return "refundable within 30 days"

    @agent.tool_plain(requires_approval=True)
    async def refund(order_id: str, cents: int) -> str:
        await dawdle()
        return refund_api(order_id, cents, durable.step_info().idempotency_key)

    return agent


support_agent = build_agent()


@durable.workflow(name="refund_agent.support")
async def support(ctx: durable.WorkflowContext, question: str) -> str:
    result = await support_agent.run(question)
    return str(result.output)


async def note_events(ctx: RunContext[None], events: AsyncIterable[AgentStreamEvent]) -> None:
    """A user's event handler: pydantic-ai calls it inside the agent's steps."""
    async for event in events:
        effect(f"event {event.event_kind} {where()}")


handled_agent = build_agent(event_stream_handler=note_events)


@durable.workflow(name="refund_agent.support_handled")
async def support_handled(ctx: durable.WorkflowContext, question: str) -> str:
    result = await handled_agent.run(question)
    return str(result.output)
