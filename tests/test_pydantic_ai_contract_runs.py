"""pydantic-ai's expectations of a durable engine, continued: what a run may and may not do.

The run's context and deps inside a step, what pydantic-ai refuses inside a workflow
(``enqueue`` in a step, a cancellation token, toolsets added at run time), deferred tools
resumed by a second run, failing tools, several agents in one run, per-run models, and a
background job's polls on durable timers across a restart: as pydantic-ai's DBOS, Temporal
and Prefect suites check them, on both backends.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent, CancellationToken
from pydantic_ai.exceptions import CallDeferred, ToolFailed, UserError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, RunContext, ToolDefinition
from pydantic_ai.toolsets import DynamicToolset, ExternalToolset, FunctionToolset

import durable
from durable.integrations.pydantic_ai import Durability
from durable.testing import explore_crashes

from .agent_contract import CALLS, completed_steps, tool_returns, wait_for_kind
from .test_pydantic_ai_contract import Shop


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


# -- run context, deps and what a step may not do --------------------------------------------


async def test_a_tool_step_gets_the_runs_context_and_its_live_deps(db: Path | str) -> None:
    """Steps run in the workflow's process: deps are handed over as they are (no
    serialization), with the run's id, the call's id and the usage so far."""
    seen: dict[str, Any] = {}
    deps = Shop()
    agent = Agent(TestModel(), name="ctx", deps_type=Shop, capabilities=[Durability(stream=False)])

    @agent.tool
    async def inspect(ctx: RunContext[Shop]) -> str:
        seen.update(
            deps=ctx.deps,
            run_id=ctx.run_id,
            tool_call_id=ctx.tool_call_id,
            requests=ctx.usage.requests,
            key=durable.step_info().idempotency_key,
        )
        return "seen"

    @durable.workflow(name="contract.ctx")
    async def with_ctx(ctx: durable.WorkflowContext) -> str:
        return str((await agent.run("go", deps=deps)).run_id)

    async with durable.Runtime(db) as rt:
        run_id = await (await rt.start(with_ctx, run_id="ctx")).result(timeout=30)
    assert seen["deps"] is deps
    assert seen["run_id"] == run_id and run_id.startswith("ctx:")
    assert seen["tool_call_id"] and seen["requests"] == 1 and seen["key"]


async def test_enqueue_inside_a_step_and_a_cancellation_token_are_refused(
    db: Path | str,
) -> None:
    refusals: list[str] = []
    agent = Agent(TestModel(), name="refuse", capabilities=[Durability(stream=False)])

    @agent.tool
    async def later(ctx: RunContext[object]) -> str:
        try:
            ctx.enqueue("later")
        except UserError as refused:
            refusals.append(str(refused))
        return "done"

    @durable.workflow(name="contract.refuse")
    async def refuse(ctx: durable.WorkflowContext, token: bool) -> str:
        token_or_none = CancellationToken() if token else None
        return (await agent.run("go", cancellation_token=token_or_none)).output

    async with durable.Runtime(db) as rt:
        assert "done" in await (await rt.start(refuse, False)).result(timeout=30)
        with pytest.raises(durable.WorkflowFailed, match="cancellation_token"):
            await (await rt.start(refuse, True)).result(timeout=30)
    assert len(refusals) == 1 and "enqueued messages would be dropped" in refusals[0]
    outside = await agent.run("go", cancellation_token=CancellationToken())
    assert "done" in outside.output and len(refusals) == 1, "outside a workflow: plain pydantic-ai"


async def test_toolsets_added_at_run_time_are_refused_in_a_workflow_only(db: Path | str) -> None:
    agent = Agent(TestModel(), name="runtime_tools", capabilities=[Durability(stream=False)])

    def extra(durable_tool: bool) -> FunctionToolset[object]:
        tools = FunctionToolset[object]()

        @tools.tool_plain(durable=durable_tool)
        async def echo(text: str) -> str:
            return text

        return tools

    @durable.workflow(name="contract.runtime_tools")
    async def runtime_tools(ctx: durable.WorkflowContext, how: str) -> str:
        if how == "iter":
            async with agent.iter("go", toolsets=[extra(True)]) as run:
                async for _ in run:
                    pass
            return "unreachable"
        if how == "external":  # not executed here: its calls come back deferred
            external = ExternalToolset[object]([ToolDefinition(name="remote")])
            deferred: AgentRunResult[str | DeferredToolRequests] = await agent.run(
                "go", toolsets=[external], output_type=[str, DeferredToolRequests]
            )
            assert isinstance(deferred.output, DeferredToolRequests)
            return ",".join(call.tool_name for call in deferred.output.calls)
        return (await agent.run("go", toolsets=[extra(how == "durable")])).output

    async with durable.Runtime(db) as rt:
        for how in ("durable", "iter"):
            with pytest.raises(durable.WorkflowFailed, match="FunctionToolset cannot be added"):
                await (await rt.start(runtime_tools, how)).result(timeout=30)
        opted_out = await (await rt.start(runtime_tools, "opted out")).result(timeout=30)
        assert await (await rt.start(runtime_tools, "external")).result(timeout=30) == "remote"
    assert "echo" in opted_out, "a tool that opts out of its step may be added at run time"
    assert "echo" in (await agent.run("go", toolsets=[extra(True)])).output


def test_the_agent_needs_a_name_and_the_capability_sits_innermost() -> None:
    with pytest.raises(UserError, match="unique `name` in order to be used with durable-workflows"):
        Agent(TestModel(), capabilities=[Durability()])
    unnamed = Durability.from_agent(Agent(TestModel(), capabilities=[Durability(name="given")]))
    assert unnamed is not None and unnamed.name == "given"
    assert unnamed.get_ordering().position == "innermost"
    assert Durability.get_serialization_name() is None, "not loadable from an agent spec"


# -- deferred tools, failures, several agents ------------------------------------------------


def _deferring_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        return ModelResponse(
            parts=[
                ToolCallPart("delete", {"path": ".env"}, tool_call_id="d-1"),
                ToolCallPart("ship", {"order": "o-1"}, tool_call_id="s-1"),
            ]
        )
    return ModelResponse(parts=[TextPart(json.dumps(tool_returns(messages), sort_keys=True))])


deferring = Agent(
    FunctionModel(_deferring_model),
    name="deferring",
    output_type=[str, DeferredToolRequests],
    capabilities=[Durability(approvals=False, stream=False)],
)


@deferring.tool_plain(requires_approval=True)
async def delete(path: str) -> str:
    CALLS.append(f"delete:{path}")
    return f"deleted {path}"


@deferring.tool_plain
async def ship(order: str) -> str:
    raise CallDeferred  # done by another system; its result comes back with the approval


@durable.workflow(name="contract.deferred")
async def deferred(ctx: durable.WorkflowContext) -> str:
    """The loop of pydantic-ai's human-in-the-loop examples, with the answer as a question."""
    first = await deferring.run("clean up")
    requests = first.output
    assert isinstance(requests, DeferredToolRequests)
    approved = await ctx.wait_for_user(
        json.dumps([call.tool_call_id for call in requests.approvals + requests.calls])
    )
    results = DeferredToolResults(
        approvals={call.tool_call_id: approved == "yes" for call in requests.approvals},
        calls={call.tool_call_id: "shipped" for call in requests.calls},
    )
    second = await deferring.run(
        message_history=first.all_messages(), deferred_tool_results=results
    )
    assert isinstance(second.output, str)
    return second.output


async def test_deferred_tools_end_the_run_and_a_second_run_resumes_them(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(deferred, run_id="deferred")
        wait = await rt.wait_for_question("deferred", timeout=30)
    assert json.loads(wait.question) == ["d-1", "s-1"] and CALLS == []
    async with durable.Runtime(db) as rt:  # answered by a new process: the run replays
        await rt.respond("deferred", "yes")
        output = await rt.handle("deferred").result(timeout=30)
        names = completed_steps(await rt.history("deferred"))
    assert json.loads(output) == {"d-1": "deleted .env", "s-1": "shipped"}
    assert CALLS == ["delete:.env"]
    assert names.count("deferring__function_toolset__<agent>.call_tool:delete") == 1


async def test_a_failing_tool_fails_its_step_and_tool_failed_reaches_the_model(
    db: Path | str,
) -> None:
    agent = Agent(TestModel(), name="failing", capabilities=[Durability(stream=False)])
    crash = {"on": False}

    @agent.tool_plain
    async def disk() -> str:
        CALLS.append("disk")
        if crash["on"]:
            raise OSError("disk on fire")
        raise ToolFailed("Disk full")

    @durable.workflow(name="contract.failing")
    async def failing(ctx: durable.WorkflowContext) -> list[Any]:
        result = await agent.run("write")
        return [
            [part.content, part.outcome]
            for message in result.all_messages()
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        ]

    async with durable.Runtime(db) as rt:
        assert await (await rt.start(failing)).result(timeout=30) == [["Disk full", "failed"]]
        crash["on"] = True
        with pytest.raises(durable.WorkflowFailed, match="disk on fire"):
            await (await rt.start(failing)).result(timeout=30)
    assert CALLS == ["disk", "disk"], "a tool's step is tried once by default"


async def test_two_agents_in_one_workflow_keep_their_own_steps(db: Path | str) -> None:
    writer = Agent(
        TestModel(custom_output_text="draft"), name="writer", capabilities=[Durability()]
    )
    editor = Agent(FunctionModel(_edit), name="editor", capabilities=[Durability(stream=False)])

    @editor.tool_plain
    async def redraft(text: str) -> str:
        return (await writer.run(text)).output  # a plain run inside this tool's step

    @durable.workflow(name="contract.two_agents")
    async def two_agents(ctx: durable.WorkflowContext) -> list[str]:
        return [(await writer.run("write")).output, (await editor.run("edit")).output]

    report = await explore_crashes(two_agents)
    assert report.outcome == ["draft", "edited: draft"]
    async with durable.Runtime(db) as rt:
        await (await rt.start(two_agents, run_id="two")).result(timeout=30)
        names = completed_steps(await rt.history("two"))
    assert names == [
        "writer__model.request_stream",
        "editor__model.request",
        "editor__function_toolset__<agent>.call_tool:redraft",
        "editor__model.request",
    ]


def _edit(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returned = list(tool_returns(messages).values())
    if not returned:
        return ModelResponse(parts=[ToolCallPart("redraft", {"text": "again"}, tool_call_id="e-1")])
    return ModelResponse(parts=[TextPart(f"edited: {returned[0]}")])


async def test_another_model_for_one_run_must_be_registered(db: Path | str) -> None:
    other = TestModel(custom_output_text="from the other model")
    agent = Agent(
        TestModel(custom_output_text="default"),
        name="models",
        capabilities=[Durability(models={"other": other}, stream=False)],
    )

    @durable.workflow(name="contract.models")
    async def pick(ctx: durable.WorkflowContext, which: str) -> str:
        model = {"other": other, "stranger": TestModel()}.get(which)
        return (await agent.run("go", model=model)).output

    async with durable.Runtime(db) as rt:
        assert await (await rt.start(pick, "default")).result(timeout=30) == "default"
        other_run = await rt.start(pick, "other", run_id="other")
        assert await other_run.result(timeout=30) == "from the other model"
        assert completed_steps(await rt.history("other")) == ["models__model.request.other"]
        with pytest.raises(durable.WorkflowFailed, match="models="):
            await (await rt.start(pick, "stranger")).result(timeout=30)


async def test_a_tool_result_that_is_not_json_fails_the_run_once(db: Path | str) -> None:
    agent = Agent(TestModel(), name="opaque", capabilities=[Durability(stream=False)])

    @agent.tool_plain
    async def handle() -> object:
        CALLS.append("handle")
        return asyncio.Lock()

    @durable.workflow(name="contract.opaque")
    async def opaque(ctx: durable.WorkflowContext) -> str:
        return (await agent.run("go")).output

    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.WorkflowFailed, match="cannot be stored as JSON"):
            await (await rt.start(opaque)).result(timeout=30)
    assert CALLS == ["handle"], "the error is the same every time: not retried"


# -- a background job's polls wait on durable timers ----------------------------------------


class BackgroundModel(Model):
    """A model whose job is suspended on the first poll and done on the second, a minute
    later (as OpenAI's background mode is); it records the jobs it is asked to cancel."""

    def __init__(self) -> None:
        super().__init__()
        self.polls = 0
        self.cancelled: list[str | None] = []

    @property
    def model_name(self) -> str:
        return "background"

    @property
    def system(self) -> str:
        return "scripted"

    def continuation_delay(self, response: ModelResponse) -> float | None:
        return 60.0

    async def request(self, messages: Any, settings: Any, parameters: Any) -> ModelResponse:
        self.polls += 1
        done = self.polls > 1
        return ModelResponse(
            parts=[TextPart("42" if done else "")],
            provider_response_id="job-1",
            state="complete" if done else "suspended",
            model_name="background",
        )

    async def cancel_suspended_response(self, response: ModelResponse) -> None:
        self.cancelled.append(response.provider_response_id)


background = BackgroundModel()
polling = Agent(background, name="polling", capabilities=[Durability(stream=False)])


@durable.workflow(name="contract.polling")
async def poll_job(ctx: durable.WorkflowContext) -> str:
    return (await polling.run("go")).output


async def test_a_restart_between_polls_leaves_the_job_running_and_waits_only_once(
    db: Path | str,
) -> None:
    background.polls, background.cancelled = 0, []
    async with durable.Runtime(db, clock=durable.VirtualClock(auto_skip=False)) as rt:
        await rt.start(poll_job, run_id="poll")
        await wait_for_kind(rt, "poll", "sleep.started")
    assert (background.polls, background.cancelled) == (1, []), "stopping it cancels nothing"
    async with durable.Runtime(db, clock=durable.VirtualClock()) as rt:
        assert await rt.handle("poll").result(timeout=30) == "42"
        kinds = [e["kind"] for e in await rt.history("poll")]
    assert (background.polls, background.cancelled) == (2, [])
    assert kinds.count("sleep.started") == 1, "the minute is one durable timer, not waited again"


# -- toolsets are entered and left on every path -------------------------------------------


class CountedToolset(FunctionToolset[object]):
    """Notes each entry and exit, and whether it was inside a step."""

    def __init__(self, tag: str, log: list[tuple[str, str, bool]], **options: Any) -> None:
        super().__init__(**options)
        self.tag, self.log = tag, log

    async def __aenter__(self) -> CountedToolset:
        self.log.append(("enter", self.tag, durable.in_step()))
        await super().__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        self.log.append(("exit", self.tag, durable.in_step()))
        return await super().__aexit__(*exc_info)


@pytest.mark.parametrize("ending", ["completed", "failed", "cancelled"])
async def test_toolsets_are_left_as_they_were_entered_however_the_run_ends(
    db: Path | str, ending: str
) -> None:
    """The agent's toolset is held by the workflow for the run; one a dynamic toolset builds
    is entered and left inside each of its steps, so nothing of it outlives a step."""
    log: list[tuple[str, str, bool]] = []
    started = asyncio.Event()
    static = CountedToolset("static", log, id="static")

    @static.tool_plain
    async def work() -> str:
        started.set()
        if ending == "failed":
            raise OSError("boom")
        if ending == "cancelled":
            await asyncio.Event().wait()  # until the run is cancelled
        return "worked"

    def build(ctx: RunContext[object]) -> CountedToolset:
        built = CountedToolset("built", log)

        @built.tool_plain
        async def more() -> str:
            return "more"

        return built

    agent = Agent(
        TestModel(),
        name="lifecycle",
        toolsets=[static, DynamicToolset(build, id="dynamic")],
        capabilities=[Durability(stream=False)],
    )

    @durable.workflow(name="contract.lifecycle")
    async def lifecycle(ctx: durable.WorkflowContext) -> str:
        return (await agent.run("go")).output

    async with durable.Runtime(db) as rt:
        handle = await rt.start(lifecycle, run_id=ending)
        if ending == "cancelled":
            await asyncio.wait_for(started.wait(), 30)
            await rt.cancel(ending)
        if ending == "completed":
            assert "worked" in await handle.result(timeout=30)
        else:
            ended = durable.WorkflowFailed if ending == "failed" else durable.WorkflowCancelled
            with pytest.raises(ended):
                await handle.result(timeout=30)
    assert log[0] == ("enter", "static", False) and log[-1] == ("exit", "static", False)
    inner = log[1:-1]
    assert inner and inner == [("enter", "built", True), ("exit", "built", True)] * (
        len(inner) // 2
    )
