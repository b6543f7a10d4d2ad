"""DurableRunner: an OpenAI Agents SDK run journaled step by step, in one process.

A real ``agents.Agent`` with an offline model (``tests/openai_agent_child.py``); the
crash tests with real processes are in ``test_openai_agents_crash.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import agents
import pytest
from agents import (
    Agent,
    LocalShellTool,
    Model,
    ModelProvider,
    RunConfig,
    Runner,
    SQLiteSession,
    function_tool,
    handoff,
)
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

import durable
from durable.integrations.openai_agents import DurableAgentRunner, DurableRunner

from . import openai_agent_child as child
from .openai_agent_child import ANSWER, refund_agent, refund_workflow
from .processes import cli


@pytest.fixture(autouse=True)
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "effects.log"
    monkeypatch.setenv("DURABLE_TEST_EFFECTS", str(path))
    return path


@pytest.fixture
def installed() -> Iterator[None]:
    DurableRunner.install()
    yield
    DurableRunner.uninstall()


async def answer_approvals(rt: durable.Runtime, run_id: str, answer: str) -> list[str]:
    """Answer each approval the run asks for with ``answer`` until it ends; the
    questions asked."""
    asked: list[str] = []
    deadline = time.monotonic() + 30
    while (await rt.get_run(run_id)).status not in (
        durable.RunStatus.COMPLETED,
        durable.RunStatus.FAILED,
    ):
        assert time.monotonic() < deadline, f"run {run_id} did not end in 30 s"
        for wait in await rt.pending_waits(run_id):
            assert wait.input_type == "approval"
            asked.append(wait.question)
            await rt.respond(run_id, answer)
        await asyncio.sleep(0.01)
    return asked


def steps_of(history: list[dict[str, Any]]) -> list[str]:
    return [event["name"] for event in history if event["kind"] == "step.completed"]


async def test_every_model_call_and_tool_is_a_named_step(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(refund_workflow, "Refund order A1", run_id="r1")
        asked = await answer_approvals(rt, "r1", "yes")
        assert await handle.result() == ANSWER
        history = await rt.history("r1")
    assert asked == [
        'Agent \'refunds\' wants to call issue_refund({"order_id":"A1","cents":1999}). Allow it?'
    ]
    assert steps_of(history) == [
        "refunds.model",
        "refunds.tool.lookup_order",  # the two lookups ran at once
        "refunds.tool.lookup_order",
        "refunds.model",
        "refunds.tool.issue_refund",
        "refunds.model",
    ]
    lines = child.effects()
    assert [line.split()[2] for line in lines if line.startswith("model")] == ["0", "3", "6"]
    assert sum(line.startswith("refund-done") for line in lines) == 1


async def test_a_rejected_tool_is_not_called_and_the_model_is_told(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(refund_workflow, "Refund order A1", run_id="r1")
        await answer_approvals(rt, "r1", "no")
        answer = await handle.result()
        history = await rt.history("r1")
    assert answer.startswith("No refund: Tool execution was not approved")
    assert "refunds.tool.issue_refund" not in steps_of(history)
    assert not any(line.startswith("refund-call") for line in child.effects())


async def test_an_approval_is_answered_from_the_command_line(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(refund_workflow, "Refund order A1", run_id="r1")
        wait = await rt.wait_for_question("r1", timeout=30)
        shown = await asyncio.to_thread(cli, db, "show", "r1")
        answered = await asyncio.to_thread(cli, db, "respond", "r1", "yes")
        assert answered.returncode == 0, answered.stderr
        assert await handle.result() == ANSWER
    assert "issue_refund" in wait.question and wait.question in shown.stdout


async def test_a_rerun_from_the_last_model_call_calls_nothing_before_it(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(refund_workflow, "Refund order A1", run_id="r1")
        await answer_approvals(rt, "r1", "yes")
        first = await handle.result()
        calls = len(child.effects())
        again = await (await rt.rerun_from("r1", 6)).result()
    assert again == first == ANSWER
    new = child.effects()[calls:]
    assert [line.split()[:3] for line in new] == [["model", "r1", "6"]], new


class Provider(ModelProvider):
    """Gives the offline refund model for its name, as a real provider gives a real one."""

    def get_model(self, model_name: str | None) -> Model:
        assert model_name == "refund-model"
        return child.RefundModel()


async def test_a_model_named_by_a_string_comes_from_the_runs_provider(db: Path) -> None:
    named = refund_agent.clone(model="refund-model")

    @durable.workflow(name="openai.named")
    async def by_name(ctx: durable.WorkflowContext) -> str:
        config = RunConfig(model_provider=Provider())
        result = await DurableRunner.run(named, "Refund order A1", run_config=config)
        return str(result.final_output)

    async with durable.Runtime(db) as rt:
        handle = await rt.start(by_name, run_id="n1")
        await answer_approvals(rt, "n1", "yes")
        assert await handle.result() == ANSWER
        assert steps_of(await rt.history("n1")).count("refunds.model") == 3


class TriageModel(Model):
    """Hands every conversation to the refund agent."""

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        step = ModelStep(output=[function_call("transfer_to_refunds", {}, call_id="handoff-1")])
        return await ScriptedModel([step]).get_response(*args, **kwargs)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@pytest.mark.parametrize("how", ["agent", "handoff()"])
async def test_a_handoff_goes_on_durably_in_the_other_agent(db: Path, how: str) -> None:
    target = refund_agent if how == "agent" else handoff(refund_agent)
    triage = Agent(name="triage", model=TriageModel(), handoffs=[target])

    @durable.workflow(name="openai.triage")
    async def triaged(ctx: durable.WorkflowContext) -> str:
        result = await DurableRunner.run(triage, "My order A1 arrived broken")
        assert result.last_agent.name == "refunds"
        return str(result.final_output)

    async with durable.Runtime(db) as rt:
        handle = await rt.start(triaged, run_id="t1")
        await answer_approvals(rt, "t1", "yes")
        assert await handle.result() == ANSWER
        steps = steps_of(await rt.history("t1"))
    assert steps[:2] == ["triage.model", "refunds.model"]
    assert steps.count("refunds.tool.issue_refund") == 1


async def test_a_failing_tool_is_retried_by_the_policy_and_fails_as_its_step(db: Path) -> None:
    tries: list[str] = []

    @function_tool(failure_error_function=None)  # raise, rather than tell the model
    async def lookup_order(order_id: str) -> str:
        tries.append(order_id)
        if tries.count(order_id) < 3:
            raise ConnectionError("flaky")
        return f"order {order_id}"

    agent = refund_agent.clone(tools=[lookup_order, child.issue_refund])

    @durable.workflow(name="openai.flaky")
    async def flaky(ctx: durable.WorkflowContext, attempts: int) -> str:
        policy = durable.RetryPolicy(max_attempts=attempts, initial_interval=0.01)
        result = await DurableRunner.run(agent, "Refund order A1", retry=policy)
        return str(result.final_output)

    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await (await rt.start(flaky, 2, run_id="two")).result()
        tries.clear()
        handle = await rt.start(flaky, 3, run_id="three")
        await answer_approvals(rt, "three", "yes")
        assert await handle.result() == ANSWER
    error = failed.value.error  # durable's own error, not the SDK's UserError around it
    assert (error["code"], error["step"], error["attempts"]) == (
        "STEP_FAILED",
        "refunds.tool.lookup_order",
        2,
    )
    assert sorted(tries) == ["A1"] * 3 + ["B2"] * 3


async def test_a_tool_that_timed_out_is_journaled_so_and_not_run_again(db: Path) -> None:
    calls: list[str] = []

    @function_tool(timeout=0.05)
    async def lookup_order(order_id: str) -> str:
        calls.append(order_id)
        await asyncio.sleep(30)
        return "never"

    agent = refund_agent.clone(tools=[lookup_order, child.issue_refund])

    @durable.workflow(name="openai.slow")
    async def slow(ctx: durable.WorkflowContext) -> str:
        return str((await DurableRunner.run(agent, "Refund order A1")).final_output)

    async with durable.Runtime(db) as rt:
        handle = await rt.start(slow, run_id="s1")
        await answer_approvals(rt, "s1", "yes")
        assert await handle.result() == ANSWER
        await (await rt.rerun_from("s1", 3)).result()  # from the model call after them
        history = await rt.history("s1")
    outputs = [
        e["payload"]["result"]
        for e in history
        if e["kind"] == "step.completed" and e["name"] == "refunds.tool.lookup_order"
    ]
    assert len(outputs) == 2 and all("timed out" in output for output in outputs), outputs
    assert sorted(calls) == ["A1", "B2"]  # the rerun handed the timeouts back


async def test_streamed_events_reach_a_durable_stream(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(refund_workflow, "Refund order A1", "agent", run_id="r1")
        await answer_approvals(rt, "r1", "yes")
        assert await handle.result() == ANSWER
        items = [item async for item in rt.read_stream("r1", "agent")]
    assert {item.kind for item in items} == {"value"}  # nothing crashed: nothing retracted
    values = [item.value for item in items]
    kinds = [value["type"] for value in values]
    text = "".join(v["delta"] for v in values if v["type"] == "response.output_text.delta")
    assert text == ANSWER
    assert kinds.count("tool_called") == kinds.count("tool_output") == 3
    assert kinds.count("response.completed") == 3
    completed = next(v for v in values if v["type"] == "response.completed")["response"]
    assert completed["status"] == "completed" and "instructions" not in completed  # slim
    orders = [v["output"] for v in values if v.get("tool") == "lookup_order" and "output" in v]
    assert sorted(orders, key=str) == [  # pydantic models, as JSON: a timedelta too
        {"order_id": "A1", "cents": 1999, "delivered_in": "P2D"},
        {"order_id": "B2", "cents": 1999, "delivered_in": "P2D"},
    ]
    approval = kinds.index("approval_requested")
    assert kinds[approval + 1] == "approval_answered"
    assert values[approval + 1]["approved"] is True
    assert kinds.index("tool_called", approval) > approval  # the refund ran after it


async def test_installed_runner_makes_the_sdks_own_runner_durable(
    db: Path, installed: None
) -> None:
    @durable.workflow(name="openai.installed")
    async def installed_run(ctx: durable.WorkflowContext) -> str:
        result = await Runner.run(refund_agent, "Refund order A1")
        return str(result.final_output)

    async with durable.Runtime(db) as rt:
        handle = await rt.start(installed_run, run_id="i1")
        await answer_approvals(rt, "i1", "yes")
        assert await handle.result() == ANSWER
        assert "refunds.tool.issue_refund" in steps_of(await rt.history("i1"))


async def test_outside_a_workflow_it_is_the_sdks_own_runner() -> None:
    result = await DurableRunner.run(refund_agent, "Refund order A1")
    (interruption,) = result.interruptions  # the SDK's own way: the caller approves
    assert interruption.name == "issue_refund"
    assert child.effects() == ["model outside a step"] * 2


async def test_what_the_journal_cannot_hold_is_refused_with_the_fix(db: Path) -> None:
    async def run_command(request: object) -> str:
        return "never run"

    shell = Agent(
        name="shell", model=child.RefundModel(), tools=[LocalShellTool(cast(Any, run_command))]
    )

    @durable.workflow(name="openai.refused")
    async def refused(ctx: durable.WorkflowContext, case: str) -> str:
        if case == "session":
            await DurableRunner.run(refund_agent, "hi", session=SQLiteSession("s"))
        elif case == "shell":
            await DurableRunner.run(shell, "hi")
        else:
            DurableAgentRunner().run_streamed(refund_agent, "hi")
        return "ran"

    async with durable.Runtime(db) as rt:
        for case, words in [
            ("session", "takes no session"),
            ("shell", "do its work in a function tool"),
            ("streamed", "DurableRunner.run(agent, input, stream='key')"),
        ]:
            handle = await rt.start(refused, case, run_id=case)
            with pytest.raises(durable.WorkflowFailed) as failed:
                await handle.result()
            assert words in failed.value.error["message"], failed.value.error


class PricedModel(Model):
    """An offline model that says it is gpt-4o and reports usage, as the real one does."""

    model = "gpt-4o"

    def __init__(self) -> None:
        usage = agents.Usage(requests=1, input_tokens=1000, output_tokens=500, total_tokens=1500)
        self.script = ScriptedModel(
            [
                ModelStep(
                    output=[function_call("lookup_order", {"order_id": "A1"}, call_id="c-1")],
                    usage=usage,
                ),
                ModelStep(output=[assistant_message("Order A1 is on its way.")], usage=usage),
            ]
        )

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        return await self.script.get_response(*args, **kwargs)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


async def test_model_usage_is_charged_to_the_budget_and_priced(db: Path) -> None:
    agent = Agent(name="priced", model=PricedModel(), tools=[child.lookup_order])

    @durable.workflow(name="openai.priced", budget=durable.Budget(tokens=1000))
    async def priced(ctx: durable.WorkflowContext) -> str:
        result = await DurableRunner.run(agent, "Where is A1?")
        return str(result.final_output)

    async with durable.Runtime(db) as rt:
        handle = await rt.start(priced, run_id="p1")
        question = await rt.wait_for_question("p1", timeout=30)
        # The first model call spent 1,500 tokens: the tool call it asked for waits.
        assert question.budget is not None and question.budget["spent"]["tokens"] == 1500
        await rt.raise_budget("p1", tokens=10_000)
        assert await handle.result() == "Order A1 is on its way."
        usage = await rt.usage("p1")
    assert usage.tokens == 3000
    assert usage.usd == pytest.approx(2 * 0.0075)  # gpt-4o's price, by genai-prices
    assert [step.step for step in usage.by_step.values()] == ["priced.model", "priced.model"]
