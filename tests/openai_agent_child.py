"""A refund agent on the OpenAI Agents SDK, with an offline model and a fake payment API.

Usage: python -m tests.openai_agent_child DB EFFECTS RUN_ID [STREAM]

The crash tests run it as a child process and SIGKILL it; the in-process tests import
its agent and workflow. Every model call appends ``model <run> <position> <attempt>``
to the EFFECTS file (flushed and fsynced), every call of the payment API ``refund-call
<key>``, and the API refunds once per idempotency key (``refund-done <key>``), as a real
payment API does, so the tests can count what ran.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import time
from typing import Any

import agents
from agents import Agent, Model, function_tool
from agents.items import TResponseOutputItem
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from pydantic import BaseModel

import durable
from durable.integrations.openai_agents import DurableRunner

agents.set_tracing_disabled(True)  # no trace export to OpenAI from a test

ANSWER = "Refunded order A1: refund r-A1-1999 is on its way."


def effect(line: str) -> None:
    with open(os.environ["DURABLE_TEST_EFFECTS"], "a") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def effects() -> list[str]:
    path = os.environ["DURABLE_TEST_EFFECTS"]
    if not os.path.exists(path):
        return []
    with open(path) as log:
        return log.read().splitlines()


class RefundModel(Model):
    """An offline model that answers from what the conversation holds: first it looks up
    two orders at once (parallel tool calls), then it refunds one, then it answers."""

    def _script(self, input: str | list[Any]) -> ScriptedModel:
        if durable.in_step():
            info = durable.step_info()
            effect(f"model {info.run_id} {info.position} {info.attempt}")
        else:
            effect("model outside a step")
        outputs = [
            item["output"]
            for item in (input if isinstance(input, list) else [])
            if isinstance(item, dict)
            and item.get("type") == "function_call_output"
            and str(item.get("call_id")).startswith("call-")  # its own tools' (no handoff's)
        ]
        reply: list[TResponseOutputItem]
        if not outputs:
            reply = [
                function_call("lookup_order", {"order_id": "A1"}, call_id="call-1"),
                function_call("lookup_order", {"order_id": "B2"}, call_id="call-2"),
            ]
        elif len(outputs) == 2:
            args = {"order_id": "A1", "cents": 1999}
            reply = [function_call("issue_refund", args, call_id="call-3")]
        elif "r-A1-1999" in str(outputs[-1]):
            reply = [assistant_message(ANSWER)]
        else:
            reply = [assistant_message(f"No refund: {outputs[-1]}")]
        return ScriptedModel([ModelStep(output=reply)])

    async def get_response(
        self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any
    ) -> Any:
        await asyncio.sleep(0.03)  # a model takes a while: room for a kill mid-call
        script = self._script(input)
        return await script.get_response(system_instructions, input, *args, **kwargs)

    async def stream_response(
        self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any
    ) -> Any:
        script = self._script(input)
        async for event in script.stream_response(system_instructions, input, *args, **kwargs):
            await asyncio.sleep(0.005)
            yield event


def refund_once(order_id: str, cents: int, key: str) -> str:
    """The payment API: refunds once per idempotency key, however often it is called."""
    effect(f"refund-call {key}")
    if not any(line.startswith(f"refund-done {key} ") for line in effects()):
        effect(f"refund-done {key} {order_id} {cents}")
    return f"r-{order_id}-{cents}"


class Order(BaseModel):
    order_id: str
    cents: int
    delivered_in: dt.timedelta  # not JSON by itself: the journal keeps it as pydantic does


@function_tool
async def lookup_order(order_id: str) -> Order:
    """Look an order up."""
    await asyncio.sleep(0.02)
    return Order(order_id=order_id, cents=1999, delivered_in=dt.timedelta(days=2))


@function_tool(needs_approval=True)
async def issue_refund(order_id: str, cents: int) -> str:
    """Refund an order (a person approves it first)."""
    refund = refund_once(order_id, cents, durable.step_info().idempotency_key)
    await asyncio.sleep(0.02)
    return f"refund {refund} issued"


refund_agent = Agent(
    name="refunds",
    instructions="Look the orders up, refund the damaged one, say what you did.",
    model=RefundModel(),
    tools=[lookup_order, issue_refund],
)


@durable.workflow(name="openai.refund")
async def refund_workflow(
    ctx: durable.WorkflowContext, request: str, stream: str | None = None
) -> str:
    result = await DurableRunner.run(refund_agent, request, stream=stream)
    return str(result.final_output)


async def main(db: str, run_id: str, stream: str | None) -> None:
    async with durable.Runtime(db) as rt:
        effect(f"open {os.getpid()} {time.time()}")
        handle = await rt.start(refund_workflow, "Refund order A1", stream, run_id=run_id)
        effect(f"result {run_id} {await handle.result()}")


if __name__ == "__main__":
    os.environ["DURABLE_TEST_EFFECTS"] = sys.argv[2]
    asyncio.run(main(sys.argv[1], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))
