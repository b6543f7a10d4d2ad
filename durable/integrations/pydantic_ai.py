"""pydantic-ai agents made durable with one capability: ``Agent(..., capabilities=[Durability()])``.

Built on pydantic-ai's own durable-execution base (``BaseDurabilityCapability`` and the
callable-operation backend, as its Temporal, DBOS and Prefect integrations are): run inside a
``@durable.workflow``, every model request, function tool call and MCP call is a named step
with retries, the agent's events go to a durable stream, a tool that needs approval becomes a
``wait_for_user`` question, and the agent's sleeps are durable timers. Outside a workflow the
agent runs as plain pydantic-ai. Only ``durable``'s public API is used here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Literal, TypedDict, cast

import durable

try:
    from pydantic import TypeAdapter
    from pydantic_ai.agent import EventStreamHandler
    from pydantic_ai.agent.abstract import AbstractAgent
    from pydantic_ai.capabilities import ProcessEventStream
    from pydantic_ai.capabilities.abstract import WrapRunHandler
    from pydantic_ai.durable_exec import (
        JSON_CODEC,
        BaseDurabilityCapability,
        DurabilityEngineSpec,
        DurableOperationId,
        JournalCallableOperationBackend,
        ModelRequestId,
        RoleBasedOperationConfig,
        ToolsetCallToolId,
        ToolsetKind,
        ToolsetValidateToolArgumentsId,
        conversation_id_from_run_id,
    )
    from pydantic_ai.exceptions import (
        ModelQuotaExceededError,
        ModelRequestRejectedError,
        UserError,
    )
    from pydantic_ai.messages import AgentStreamEvent, ToolCallPart
    from pydantic_ai.models import Model
    from pydantic_ai.run import AgentRunResult
    from pydantic_ai.tools import (
        AgentDepsT,
        DeferredToolRequests,
        DeferredToolResults,
        RunContext,
        ToolDenied,
    )
    from pydantic_ai.toolsets import ToolsetTool
except ImportError as missing:  # pragma: no cover - the extra is in the dev set
    raise ImportError(
        "durable.integrations.pydantic_ai needs pydantic-ai:"
        " pip install 'durable-workflows[pydantic-ai]'"
    ) from missing

from durable.integrations._spend import charge_model_call

__all__ = ["APPROVE", "DENY", "Durability", "StepConfig"]

APPROVE = "yes"
"""The answer that approves a tool call (``rt.respond(run_id, "yes")``)."""
DENY = "no"
"""The answer that denies a tool call; the model is told a person denied it."""
_APPROVAL_OPTIONS = [{"id": APPROVE, "label": "Approve"}, {"id": DENY, "label": "Deny"}]
_QUESTION_ARGS_LIMIT = 400
_EVENTS: TypeAdapter[AgentStreamEvent] = TypeAdapter(AgentStreamEvent)


class StepConfig(TypedDict, total=False):
    """How one kind of the agent's steps runs: as ``@durable.step``'s options.

    A tool takes its own in its metadata, ``metadata={"durable": StepConfig(...)}``, or
    ``{"durable": False}`` (or the tool's ``durable=False``) to run outside a step.
    """

    retry: durable.RetryPolicy
    timeout: float
    at_most_once: bool


_STEP_CONFIG_KEYS = frozenset(StepConfig.__annotations__)
_MODEL_RETRY = durable.RetryPolicy(
    max_attempts=3, non_retryable=(ModelRequestRejectedError, ModelQuotaExceededError)
)
"""Model requests are retried (errors another attempt cannot fix are not); tools run once."""


def _step_config(config: Mapping[str, Any] | None, where: str) -> StepConfig:
    """``config`` checked, with ``UserError`` never retried: it fails the same way every time."""
    checked = dict(config or {})
    if unknown := set(checked) - _STEP_CONFIG_KEYS:
        raise UserError(
            f"{where} has unknown keys {sorted(unknown)}; a StepConfig takes"
            f" {sorted(_STEP_CONFIG_KEYS)} (the options of @durable.step)"
        )
    retry = checked.get("retry", durable.RetryPolicy())
    if not isinstance(retry, durable.RetryPolicy):
        raise UserError(
            f"{where}['retry'] must be a durable.RetryPolicy, got {retry!r:.60};"
            " for example durable.RetryPolicy(max_attempts=3)"
        )
    if UserError not in retry.non_retryable:
        retry = dataclasses.replace(retry, non_retryable=(*retry.non_retryable, UserError))
    checked["retry"] = retry
    try:  # @durable.step checks the other options as it would on a function
        durable.step(**checked)
    except (TypeError, ValueError) as error:
        raise UserError(f"{where}: {error}") from error
    return cast(StepConfig, checked)


class _StepBackend(JournalCallableOperationBackend[StepConfig]):
    """Runs each of pydantic-ai's durable operations as one named step of the current run."""

    def execution_attempt(self) -> int:
        return durable.step_info().attempt if durable.in_step() else 1

    async def execute(
        self,
        *,
        operation_id: DurableOperationId,
        name: str,
        body: Callable[[], Awaitable[object]],
        cache_key: tuple[object, ...],
        config: StepConfig,
    ) -> object:
        ctx = durable.current_context()
        if ctx is None:  # the base only dispatches here inside a workflow
            raise UserError(f"step {name!r} was dispatched outside a durable workflow")
        options = durable.step(
            retry=config.get("retry"),
            timeout=config.get("timeout"),
            at_most_once=config.get("at_most_once", False),
        )
        if isinstance(operation_id, ModelRequestId):
            body = _charged(body)
        return await ctx.step(name, options(body))


def _charged(request: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
    """A model request that charges its usage to the run's budget, inside its step: the
    response as the step returns it (JSON), priced by genai-prices where it is known."""

    async def charged() -> object:
        response = await request()
        if isinstance(response, dict) and isinstance(response.get("usage"), dict):
            model, provider = response.get("model_name"), response.get("provider_name")
            charge_model_call(response["usage"], model, provider)
        return response

    return charged


class Durability(BaseDurabilityCapability[AgentDepsT]):
    """Makes a pydantic-ai agent durable when it runs inside a ``@durable.workflow``.

    ``Agent(model, name="support", capabilities=[Durability()])``; then ``await
    agent.run(...)`` in a workflow. Each model request is a step named
    ``<agent>__model.request_stream`` (or ``...model.request``), each function tool call
    ``<agent>__function_toolset__<toolset>.call_tool:<tool>`` and each MCP call
    ``<agent>__mcp_server__<id>.call_tool``: a completed one is never run again, after a
    crash or on replay. Outside a workflow the agent is plain pydantic-ai.
    """

    engine_spec = DurabilityEngineSpec(
        engine_name="durable-workflows",  # in pydantic-ai's messages: "with durable-workflows"
        durable_unit_noun="step",
        durable_container_noun="workflow",
        # Steps journal JSON: values are reduced to JSON in the step, validated back outside.
        codec=JSON_CODEC,
        serialization_failure=lambda error: UserError(
            f"a value an agent step returned cannot be stored as JSON ({error});"
            " every model response and tool result must be serializable by pydantic"
        ),
        wrapped_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        # Steps run in the workflow's own process, so an MCP server's session is held for the
        # whole agent run and opened inside the first step that needs it (and retried with it).
        toolset_lifecycles={
            "function": "enter-always",
            "mcp": "enter-in-durable-unit",
            "dynamic": "enter-never",
        },
        unsupported_runtime_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        journal_discovery=True,
        sequential_tools_in_durable_context=False,
        tool_config_key="durable",
        nondeterminism_error_types=(durable.NonDeterminismError,),
    )

    def __init__(
        self,
        *,
        name: str | None = None,
        models: Mapping[str, Model] | None = None,
        stream: str | bool = True,
        approvals: bool = True,
        model_step: StepConfig | None = None,
        tool_step: StepConfig | None = None,
        mcp_step: StepConfig | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        parallel_tool_calls: Literal["parallel_ordered_events", "sequential"] = (
            "parallel_ordered_events"
        ),
    ) -> None:
        """Options are checked here, with a ``UserError`` that names the fix.

        Args:
            name: The agent's name in its step names (default: the agent's ``name``); keep
                it stable, as runs in flight replay by it.
            models: More models by id, for ``agent.run(model=...)`` with a ``Model`` instance.
            stream: The durable stream the agent's events go to (``rt.read_stream(run_id,
                key)``): a key, True for ``"agent:<name>"``, False for none.
            approvals: A tool that needs approval asks a person (``wait_for_user``, answered
                ``"yes"`` or ``"no"`` from the CLI, the HTTP API or the web view); False ends
                the run with ``DeferredToolRequests`` as plain pydantic-ai does.
            model_step: Model requests' step options; by default three attempts.
            tool_step: Function tools' step options (a tool's metadata can override them);
                by default one attempt.
            mcp_step: MCP calls' step options; by default one attempt.
            event_stream_handler: Your handler, called inside steps, never again on replay.
            parallel_tool_calls: ``"parallel_ordered_events"`` (the default) runs parallel
                tool calls together but emits their events in call order, so a replay meets
                them as journaled; ``"sequential"`` runs them one at a time.
        """
        super().__init__(models=models, event_stream_handler=event_stream_handler, name=name)
        if not isinstance(stream, (str, bool)):
            raise UserError(f"Durability(stream=...) takes a key, True or False, got {stream!r}")
        if isinstance(stream, str) and not stream.strip():
            raise UserError("Durability(stream=...) needs a non-empty key (or True, or False)")
        if parallel_tool_calls not in ("parallel_ordered_events", "sequential"):
            raise UserError(
                "Durability(parallel_tool_calls=...) takes 'parallel_ordered_events' or"
                f" 'sequential', got {parallel_tool_calls!r}"
            )
        self._stream = stream
        self._approvals = approvals
        self._user_handler = event_stream_handler
        self._parallel_tool_calls = parallel_tool_calls
        self._model_step = _step_config({"retry": _MODEL_RETRY, **(model_step or {})}, "model_step")
        self._tool_step = _step_config(tool_step, "tool_step")
        self._mcp_step = _step_config(mcp_step, "mcp_step")
        self._backend: _StepBackend | None = None

    # -- where the code runs -------------------------------------------------

    @property
    def in_durable_context(self) -> bool:
        return durable.current_context() is not None

    @property
    def in_durable_unit(self) -> bool:
        return durable.in_step() or super().in_durable_unit

    @property
    def stream_key(self) -> str | None:
        """The durable stream the agent's events are written to, or None."""
        if self._stream is False:
            return None
        return f"agent:{self.name}" if self._stream is True else self._stream

    def _workflow(self) -> durable.WorkflowContext:
        ctx = durable.current_context()
        assert ctx is not None, "called only inside a durable workflow"
        return ctx

    # -- binding -------------------------------------------------------------

    def _bind_to_agent(self, agent: AbstractAgent[AgentDepsT, Any]) -> None:
        if self.stream_key is not None:
            # On the bound copy, so the handler reads this agent's name for the stream key.
            self._event_stream_handler = self._publish_events
            self._process_event_stream = ProcessEventStream(self._publish_events)
        self._backend = _StepBackend(
            agent_name=self.name,
            config=RoleBasedOperationConfig[StepConfig](
                model=self._model_step,
                event=self._tool_step,
                capability=self._tool_step,
                tool=self._tool_step,
                resolve_tool=self._resolve_tool_config,
            ),
        )
        super()._bind_to_agent(agent)

    def get_durable_operation_backend(self) -> _StepBackend:
        if self._backend is None:
            raise UserError(
                "Durability must be attached to an agent: Agent(..., capabilities=[...])"
            )
        return self._backend

    def _toolset_base_config(self, kind: ToolsetKind) -> Any:
        return self._mcp_step if kind == "mcp" else self._tool_step

    def _normalize_unit_config(self, config: Any) -> Any:
        return _step_config(config, "a tool's metadata['durable']")

    def _resolve_tool_config(
        self, operation_id: DurableOperationId, tool: object | None, tool_name: str
    ) -> StepConfig | Literal[False]:
        kind: ToolsetKind = "function"
        if isinstance(operation_id, ToolsetCallToolId | ToolsetValidateToolArgumentsId):
            kind = operation_id.toolset_kind
        resolve = self._build_resolve_tool_config(self._toolset_base_config(kind))
        return cast(
            "StepConfig | Literal[False]", resolve(cast("ToolsetTool[Any] | None", tool), tool_name)
        )

    # -- replay-stable identity, time and sleeps -----------------------------

    def get_default_run_id(self) -> str | None:
        ctx = durable.current_context()
        return None if ctx is None else f"{ctx.run_id}:{ctx.uuid4()}"

    def get_default_conversation_id(self, run_id: str) -> str | None:
        return conversation_id_from_run_id(run_id) if self.in_durable_context else None

    async def get_run_start_time(self, run_id: str) -> datetime | None:
        ctx = durable.current_context()
        return None if ctx is None else ctx.now()

    async def durable_sleep(self, seconds: float) -> None:
        """The agent's waits (between polls of a background job) on the runtime's timers."""
        await self._workflow().sleep(max(seconds, 0.0))

    async def wrap_run(
        self, ctx: RunContext[AgentDepsT], *, handler: WrapRunHandler
    ) -> AgentRunResult[Any]:
        """Parallel tool calls emit their events in call order, so replays meet them in order."""
        agent = self._agent
        if agent is None or not self.in_durable_context:
            return await super().wrap_run(ctx, handler=handler)
        with agent.parallel_tool_call_execution_mode(self._parallel_tool_calls):
            return await super().wrap_run(ctx, handler=handler)

    # -- the event stream ----------------------------------------------------

    @property
    def has_wrap_run_event_stream(self) -> bool:
        # Outside a workflow there is no durable stream: stream only for the user's handler.
        return self._user_handler is not None or (
            self.stream_key is not None and self.in_durable_context
        )

    async def _publish(self, event: AgentStreamEvent) -> None:
        key = self.stream_key
        if key is not None and (durable.in_step() or durable.current_context() is not None):
            await durable.write_stream(key, _EVENTS.dump_python(event, mode="json"))

    async def _publish_events(
        self, ctx: RunContext[AgentDepsT], events: AsyncIterable[AgentStreamEvent]
    ) -> None:
        """The handler pydantic-ai calls inside a model step with its live events (tokens):
        each goes to the durable stream, tagged with the step's attempt, then to the user's
        handler."""

        async def published() -> AsyncIterator[AgentStreamEvent]:
            async for event in events:
                await self._publish(event)
                yield event

        if self._user_handler is not None:
            await self._user_handler(ctx, published())
        else:
            async for _ in published():
                pass

    async def _dispatch_event_stream_event(
        self, ctx: RunContext[AgentDepsT], event: AgentStreamEvent
    ) -> None:
        """A workflow-side event (a tool's call or result): written by the workflow itself,
        one journaled call, unless the user's handler must see it (then in a step)."""
        if self._user_handler is None:
            await self._publish(event)
            return
        await super()._dispatch_event_stream_event(ctx, event)

    # -- approvals -----------------------------------------------------------

    async def handle_deferred_tool_calls(
        self, ctx: RunContext[AgentDepsT], *, requests: DeferredToolRequests
    ) -> DeferredToolResults | None:
        """Each call that needs approval is a ``wait_for_user`` question, asked one at a
        time in the order the model made them; external calls are left to the caller."""
        workflow = durable.current_context()
        if workflow is None or not self._approvals or not requests.approvals:
            return None
        decisions: dict[str, bool | ToolDenied] = {}
        for call in requests.approvals:
            answer = await workflow.wait_for_user(
                self._question(call), input_type="approval", options=_APPROVAL_OPTIONS
            )
            decisions[call.tool_call_id] = (
                True if answer == APPROVE else ToolDenied("A person denied this tool call.")
            )
        return requests.build_results(approvals=decisions)

    def _question(self, call: ToolCallPart) -> str:
        args = call.args_as_json_str()
        if len(args) > _QUESTION_ARGS_LIMIT:
            args = args[: _QUESTION_ARGS_LIMIT - 3] + "..."
        return f"Agent {self.name!r} asks to call {call.tool_name}({args}). Approve?"
