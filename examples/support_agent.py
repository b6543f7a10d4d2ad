"""A pydantic-ai support agent made durable with one line, killed mid-run, and finished.

    pip install 'durable-workflows[pydantic-ai]'
    python examples/support_agent.py

The agent (an offline, scripted model, so no API key is needed) looks up an order,
checks the refund policy (two tool calls at once), asks a person to approve the refund,
refunds, and answers. `capabilities=[Durability()]` makes every model request and tool
call a journaled step. The run goes on in a child process that is killed with SIGKILL at
a random moment; a new process opens the same journal and finishes the run. No model call
or refund whose step had completed runs again, and the refund is made once. The run has a
budget: each model call charges its tokens (and dollars, for a model genai-prices knows),
and a run that reaches its cap waits for a person to raise it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.tools import DeferredToolRequests

import durable
from durable.integrations.pydantic_ai import Durability

RUN_ID = "ticket-1042"


def say(text: str) -> None:
    print(text, flush=True)


def where() -> str:
    info = durable.step_info()
    return f"step {info.position}, attempt {info.attempt}"


async def scripted_model(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    """Stands in for an LLM: what it says next depends only on what the tools returned."""
    done = {
        part.tool_name
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if part.part_kind == "tool-return"
    }
    say(f"  MODEL  call  ({where()})")
    await asyncio.sleep(0.4)  # an LLM takes a while: a kill may land in here
    if "lookup_order" not in done:
        yield {
            0: DeltaToolCall(name="lookup_order", json_args='{"order_id": "o-7"}'),
            1: DeltaToolCall(name="check_policy", json_args='{"order_id": "o-7"}'),
        }
    elif "refund" not in done:
        yield {0: DeltaToolCall(name="refund", json_args='{"order_id": "o-7", "cents": 1999}')}
    else:
        for token in ["Your ", "refund ", "of ", "$19.99 ", "is ", "on ", "its ", "way."]:
            yield token
    say(f"  MODEL  done  ({where()})")


agent = Agent(
    FunctionModel(stream_function=scripted_model),
    name="support",
    output_type=[str, DeferredToolRequests],
    capabilities=[Durability()],  # the one line
)


@agent.tool_plain
async def lookup_order(order_id: str) -> dict[str, object]:
    say(f"  TOOL   lookup_order ({where()})")
    return {"order_id": order_id, "total_cents": 1999, "status": "delivered"}


@agent.tool_plain
async def check_policy(order_id: str) -> str:
    say(f"  TOOL   check_policy ({where()})")
    return "refundable within 30 days of delivery"


@agent.tool_plain(requires_approval=True)
async def refund(order_id: str, cents: int) -> str:
    key = durable.step_info().idempotency_key  # the payment API makes one refund per key
    say(f"  REFUND {order_id} {cents} cents, key {key[:12]}... ({where()})")
    await asyncio.sleep(0.2)
    return f"re_{order_id}"


BUDGET = durable.Budget(usd=1.00, tokens=20_000)


@durable.workflow(name="support_ticket", budget=BUDGET)
async def support_ticket(ctx: durable.WorkflowContext, message: str) -> str:
    result = await agent.run(message)
    return str(result.output)


async def approve_when_asked(rt: durable.Runtime) -> None:
    """A person approving from the web view, `durable respond`, or here through the API."""
    try:
        wait = await rt.wait_for_question(RUN_ID)
    except durable.DurableError:
        return  # the run was approved (and ended) before this process began
    say(f"  ASKED  {wait.question}")
    await rt.respond(RUN_ID, "yes")
    say("  ANSWER yes (rt.respond; or: durable --db support.db respond ticket-1042 yes)")


async def child(db: str) -> None:
    say(f"process {os.getpid()}: opening the journal, resuming anything unfinished")
    async with durable.Runtime(db) as rt:
        run = await rt.start(support_ticket, "Please refund order o-7", run_id=RUN_ID)
        approver = asyncio.create_task(approve_when_asked(rt))
        answer = await run.result()
        approver.cancel()
        say(f"  RESULT {answer}")


def spawn(db: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, __file__, "--child", db]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)


async def completed_steps(db: str) -> set[int]:
    async with durable.Runtime(db, recover=False) as rt:
        history = await rt.history(RUN_ID)
    return {event["position"] for event in history if event["kind"] == "step.completed"}


async def spend(db: str) -> durable.Usage:
    async with durable.Runtime(db, recover=False) as rt:
        return await rt.usage(RUN_ID)


CALL_LINES = ("  MODEL  call", "  TOOL", "  REFUND")


def calls_in(output: list[str]) -> list[tuple[str, int]]:
    """(kind, step position) of each model call, tool call and refund that began."""
    return [
        (line.split()[0], int(line.split("(step ")[1].split(",")[0]))
        for line in output
        if line.startswith(CALL_LINES)
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "support.db")
        seed = int(os.environ.get("SUPPORT_AGENT_SEED", random.randrange(10_000)))
        chance = random.Random(seed)
        say(f"(the kill's moment: SUPPORT_AGENT_SEED={seed} picks it again)")
        kill_after = chance.randint(1, 6)
        say(f"== Run 1: the agent starts; SIGKILL soon after its call number {kill_after} began")
        first = spawn(db)
        assert first.stdout is not None
        before: list[str] = []
        for line in first.stdout:
            print(line, end="")
            before.append(line)
            if len(calls_in(before)) >= kill_after or "RESULT" in line:
                break
        asyncio.run(asyncio.sleep(chance.random() * 0.3))
        first.send_signal(signal.SIGKILL)
        first.wait()
        done = asyncio.run(completed_steps(db))
        say(f"== SIGKILL: process {first.pid} died; steps completed: positions {sorted(done)}\n")

        say("== Run 2: a new process opens the same journal")
        second = spawn(db)
        output, _ = second.communicate(timeout=120)
        print(output, end="")
        if second.returncode != 0:
            sys.exit(f"the second process failed with exit code {second.returncode}")
        report(calls_in(before), calls_in(output.splitlines()), done)
        usage = asyncio.run(spend(db))
        say(
            f"spent {usage.tokens} tokens and ${usage.usd:.4f} of a budget of"
            f" {BUDGET.tokens} tokens and ${BUDGET.usd:.2f} (an offline model has no price;"
            " a real one is priced by genai-prices); a killed call's spend counts too"
        )
        if usage.tokens <= 0:
            sys.exit("UNEXPECTED: the model calls charged no tokens")


def report(before: list[tuple[str, int]], after: list[tuple[str, int]], done: set[int]) -> None:
    repeated = [call for call in after if call[1] in done]
    resumed = [call for call in after if call in before]
    made = set(before + after)
    models = sum(kind == "MODEL" for kind, _ in made)
    refunds = sum(kind == "REFUND" for kind, _ in made)
    say(f"\nmodel calls: {models}, refunds: {refunds}; completed calls run again: {len(repeated)}")
    if resumed:
        say(
            f"cut short by the kill, so run again: {len(resumed)} (a refund keeps its"
            " idempotency key: the payment API refunds once)"
        )
    if repeated or refunds != 1 or models != 3:
        sys.exit("UNEXPECTED: a completed call ran again, or the counts are wrong")
    say("No completed model call or refund ran again; the customer was refunded once.")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        asyncio.run(child(sys.argv[2]))
    else:
        main()
