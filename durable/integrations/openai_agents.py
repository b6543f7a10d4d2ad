"""The OpenAI Agents SDK, durable: ``await DurableRunner.run(agent, input)`` in a workflow.

Inside a ``@durable.workflow`` every model call and every function-tool call of the
agent run is a named step (``"<agent>.model"``, ``"<agent>.tool.<tool>"``), so a crash
or a restart resumes the agent where it stood: a completed model call or tool is not
run again, its journaled result is handed back. A tool with ``needs_approval`` becomes
``ctx.wait_for_user(..., input_type="approval")``, answered from the CLI, the HTTP API
or the web view. With ``stream="key"`` the model's events and the tools' calls and
outputs go to that durable stream, tagged with the attempt that wrote them. Outside a
workflow, and inside a step's body, it is the SDK's own runner.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from agents import (
    Agent,
    AgentsException,
    CodeInterpreterTool,
    FileSearchTool,
    FunctionTool,
    Handoff,
    HostedMCPTool,
    ImageGenerationTool,
    Model,
    ModelSettings,
    RunConfig,
    RunContextWrapper,
    RunResult,
    RunResultStreaming,
    RunState,
    Tool,
    TResponseInputItem,
    WebSearchTool,
)
from agents.items import ToolApprovalItem
from agents.models.default_models import get_default_model_settings
from agents.run import AgentRunner, RunOptions, set_default_agent_runner
from agents.run_context import TContext
from agents.tool import ToolSearchTool, invoke_function_tool
from agents.tool_context import ToolContext
from typing_extensions import Unpack

from durable import DurableError, RetryPolicy, WorkflowContext, current_context, write_stream
from durable.integrations._openai_model import _NO_RUN_STREAMED, DurableModel, _as_step, _Options

__all__ = ["DurableAgentRunner", "DurableModel", "DurableRunner", "DurableToolCall"]

_HOSTED_TOOLS = (
    CodeInterpreterTool,
    FileSearchTool,
    HostedMCPTool,
    ImageGenerationTool,
    ToolSearchTool,
    WebSearchTool,
)
"""Tools the model's provider runs inside the model call: journaled with its response."""


class DurableToolCall:
    """The invoker of a function tool whose every call in a workflow is a step named
    ``step_name``: the step calls ``tool`` as the SDK does (its own timeout applies in
    the step, so a call that timed out is journaled as such and never run again). The
    output is journaled as JSON (what is not JSON as its ``str()``, what the SDK would
    send the model), the same on the first run and on every replay."""

    def __init__(
        self,
        tool: FunctionTool,
        step_name: str,
        *,
        stream: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.tool = tool
        self.step_name = step_name
        self._options = _Options(stream, retry)

    async def __call__(self, context: ToolContext[Any], arguments: str) -> Any:
        ctx = current_context()
        if ctx is None:
            return await invoke_function_tool(
                function_tool=self.tool, context=context, arguments=arguments
            )
        key = self._options.stream
        about = {"tool": self.tool.name, "call_id": context.tool_call_id}

        async def call_tool() -> Any:
            if key is not None:
                await write_stream(key, {"type": "tool_called", **about, "arguments": arguments})
            output = await invoke_function_tool(
                function_tool=self.tool, context=context, arguments=arguments
            )
            output = _storable(output)
            if key is not None:
                await write_stream(key, {"type": "tool_output", **about, "output": output})
            return output

        return await ctx.step(_as_step(self.step_name, self._options.retry, call_tool))


def _storable(output: Any) -> Any:
    """A tool's output as the journal keeps it: JSON-ready values, dataclasses and
    pydantic models as they are (the journal stores them as JSON), anything else as the
    text the SDK would have sent the model."""
    if output is None or isinstance(output, (str, int, float, bool, list, tuple, dict)):
        return output
    if dataclasses.is_dataclass(output) or callable(getattr(output, "model_dump", None)):
        return output
    return str(output)


class _DurableAgents:
    """Copies of a run's agents (handoffs followed) whose model calls and function tools
    are steps; one copy per agent, made once per ``run``."""

    def __init__(self, run_config: RunConfig, options: _Options) -> None:
        self._run_config = run_config
        self._options = options
        self._copies: dict[int, Agent[Any]] = {}

    def of(self, agent: Agent[Any]) -> Agent[Any]:
        copy = self._copies.get(id(agent))
        if copy is not None:
            return copy
        if agent.mcp_servers:
            raise DurableError(
                f"agent {agent.name!r} has MCP servers, whose tool calls DurableRunner does"
                " not journal yet; call the MCP tools from function tools instead"
            )
        options = self._options
        model = DurableModel(
            _model_of(agent, self._run_config),
            f"{agent.name}.model",
            stream=options.stream,
            retry=options.retry,
        )
        copy = agent.clone(
            model=model,
            model_settings=_settings_of(agent, self._run_config),
            tools=[self._tool(agent, tool) for tool in agent.tools],
        )
        self._copies[id(agent)] = copy
        copy.handoffs = [self._handoff(handoff) for handoff in agent.handoffs]
        return copy

    def _tool(self, agent: Agent[Any], tool: Tool) -> Tool:
        if isinstance(tool, FunctionTool):
            invoker = DurableToolCall(
                tool,
                f"{agent.name}.tool.{tool.name}",
                stream=self._options.stream,
                retry=self._options.retry,
            )
            # The timeout is the step's to apply (DurableToolCall), not the SDK's around it.
            return dataclasses.replace(tool, on_invoke_tool=invoker, timeout_seconds=None)
        if isinstance(tool, _HOSTED_TOOLS):
            return tool
        raise DurableError(
            f"agent {agent.name!r} has a {type(tool).__name__} ({tool.name!r}), which runs"
            " on this machine and which DurableRunner does not journal yet; do its work in a"
            " function tool (@function_tool), whose every call is a step"
        )

    def _handoff(self, handoff: Agent[Any] | Handoff[Any, Any]) -> Any:
        if isinstance(handoff, Agent):
            return self.of(handoff)
        invoke = handoff.on_invoke_handoff

        async def on_invoke_handoff(context: RunContextWrapper[Any], arguments: str) -> Any:
            return self.of(await invoke(context, arguments))

        return dataclasses.replace(handoff, on_invoke_handoff=on_invoke_handoff)


def _model_of(agent: Agent[Any], run_config: RunConfig) -> Model:
    """The model the SDK would call for ``agent`` under ``run_config``."""
    chosen = run_config.model if run_config.model is not None else agent.model
    if isinstance(chosen, Model):
        return chosen
    return run_config.model_provider.get_model(chosen)


def _settings_of(agent: Agent[Any], run_config: RunConfig) -> ModelSettings:
    """The settings the SDK would use for ``agent``: a model named by a string brings
    its own defaults unless the agent set its own. The copy holds a model object, for
    which the SDK adds no defaults, so they are kept here."""
    model = agent.model
    implicit = ModelSettings() if isinstance(model, Model) else get_default_model_settings(model)
    if agent.model_settings != implicit:
        return agent.model_settings
    if isinstance(run_config.model, str):
        return get_default_model_settings(run_config.model)
    if isinstance(run_config.model, Model):
        return ModelSettings()
    return implicit


def _run_config(value: RunConfig | dict[str, Any] | None) -> RunConfig:
    if value is None:
        return RunConfig()
    if isinstance(value, RunConfig):
        return value
    if isinstance(value, dict):
        return RunConfig(**value)
    raise TypeError(f"run_config must be a RunConfig or a dict, got {type(value).__name__}")


class DurableAgentRunner(AgentRunner):
    """The SDK's runner, durable inside a workflow: ``DurableRunner.install()`` makes it
    the SDK's default, so ``agents.Runner.run`` in a workflow is journaled too.

    ``stream`` names a durable stream for the model's events and the tools' calls and
    outputs; ``retry`` is the ``RetryPolicy`` of every model and tool step.
    """

    def __init__(self, *, stream: str | None = None, retry: RetryPolicy | None = None) -> None:
        if stream is not None and (not isinstance(stream, str) or not stream):
            raise TypeError(f"stream must be a stream's key (a non-empty str), got {stream!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a durable.RetryPolicy, got {retry!r:.60}")
        self._options = _Options(stream, retry)

    async def run(
        self,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem] | RunState[TContext],
        **kwargs: Unpack[RunOptions[TContext]],
    ) -> RunResult:
        ctx = current_context()
        if ctx is None:
            return await super().run(starting_agent, input, **kwargs)
        _refuse_outside_state(input, kwargs)
        run_config = _run_config(kwargs.get("run_config"))
        agent = _DurableAgents(run_config, self._options).of(starting_agent)
        kwargs["run_config"] = dataclasses.replace(run_config, model=None)
        result = await self._run_once(agent, input, kwargs)
        while result.interruptions:
            state = result.to_state()
            for item in result.interruptions:
                await self._decide(ctx, state, item)
            kwargs.pop("context", None)  # the state carries it
            result = await self._run_once(agent, state, kwargs)
        return result

    async def _run_once(
        self,
        agent: Agent[Any],
        input: str | list[TResponseInputItem] | RunState[Any],
        kwargs: RunOptions[Any],
    ) -> RunResult:
        """The SDK's run; durable's own errors (a step that failed for good, a journal
        the code no longer matches) reach the workflow as themselves, not wrapped in the
        SDK's ``UserError``, so they keep their code and fields."""
        try:
            return await super().run(agent, input, **kwargs)
        except AgentsException as error:
            cause = error.__cause__
            while cause is not None and not isinstance(cause, DurableError):
                cause = cause.__cause__
            if cause is None:
                raise
            raise cause from None

    async def _decide(
        self, ctx: WorkflowContext, state: RunState[Any], item: ToolApprovalItem
    ) -> None:
        """Ask a person whether the tool call ``item`` may run, and record the answer."""
        tool = item.qualified_name or item.name or "a tool"
        arguments = item.arguments or ""
        shown = arguments if len(arguments) <= 500 else arguments[:500] + "..."
        about = {"tool": tool, "call_id": item.call_id, "arguments": arguments}
        await self._publish(ctx, {"type": "approval_requested", **about})
        answer = await ctx.wait_for_user(
            f"Agent {item.agent.name!r} wants to call {tool}({shown}). Allow it?",
            input_type="approval",
        )
        approved = answer == "yes"
        await self._publish(ctx, {"type": "approval_answered", **about, "approved": approved})
        if approved:
            state.approve(item)
        else:
            state.reject(item)

    async def _publish(self, ctx: WorkflowContext, value: dict[str, Any]) -> None:
        if self._options.stream is not None:
            await ctx.write_stream(self._options.stream, value)

    def run_streamed(
        self,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem] | RunState[TContext],
        **kwargs: Unpack[RunOptions[TContext]],
    ) -> RunResultStreaming:
        if current_context() is not None:
            raise DurableError(_NO_RUN_STREAMED)
        return super().run_streamed(starting_agent, input, **kwargs)


def _refuse_outside_state(input: object, kwargs: RunOptions[Any]) -> None:
    """Refuse what would make the run's history live outside its journal."""
    if isinstance(input, RunState):
        raise DurableError(
            "DurableRunner.run in a workflow takes the input itself, not a RunState: it"
            " asks for approvals itself (ctx.wait_for_user) and keeps the run's history in"
            " the journal"
        )
    if kwargs.get("session") is not None:
        raise DurableError(
            "DurableRunner.run in a workflow takes no session: the journal already keeps"
            " the conversation, and a session would be written again on every replay; pass"
            " the earlier items as the input instead"
        )


class DurableRunner:
    """``agents.Runner``, durable: ``await DurableRunner.run(agent, input)`` in a workflow.

    Each model call and each function-tool call is a step; ``needs_approval`` tools wait
    for a person (``input_type="approval"``); with ``stream="key"`` the model's events and
    the tools' calls go to that durable stream. ``DurableRunner.install()`` makes the SDK's
    own ``Runner.run`` do the same inside workflows.
    """

    @classmethod
    async def run(
        cls,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem],
        *,
        stream: str | None = None,
        retry: RetryPolicy | None = None,
        **kwargs: Unpack[RunOptions[TContext]],
    ) -> RunResult:
        """Run ``starting_agent`` on ``input`` as ``agents.Runner.run`` does, durably."""
        runner = DurableAgentRunner(stream=stream, retry=retry)
        return await runner.run(starting_agent, input, **kwargs)

    @classmethod
    def install(cls, *, stream: str | None = None, retry: RetryPolicy | None = None) -> None:
        """Make ``agents.Runner.run`` durable inside workflows (and unchanged elsewhere),
        through the SDK's own hook for its default runner."""
        set_default_agent_runner(DurableAgentRunner(stream=stream, retry=retry))

    @classmethod
    def uninstall(cls) -> None:
        """Give ``agents.Runner`` its own runner back."""
        set_default_agent_runner(None)
