"""The model of an OpenAI Agents SDK run inside a workflow: each call a named step, its
response journaled as the SDK's own items, its stream's events written to the run's
durable stream (``openai_agents.py`` builds the runner around it)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agents import (
    Handoff,
    Model,
    ModelBehaviorError,
    ModelResponse,
    ModelSettings,
    ModelTracing,
    Tool,
    TResponseInputItem,
)
from agents.agent_output import AgentOutputSchemaBase
from agents.items import TResponseStreamEvent
from agents.usage import Usage
from openai.types.responses import ResponseUsage
from openai.types.responses.response_prompt_param import ResponsePromptParam
from pydantic import TypeAdapter

from durable import DurableError, RetryPolicy, current_context, step, write_stream
from durable.integrations._spend import charge_model_call

_NO_RUN_STREAMED = (
    "Runner.run_streamed is not durable inside a workflow: call"
    " DurableRunner.run(agent, input, stream='key') and read the events from outside with"
    " rt.read_stream(run_id, 'key') (or GET /api/runs/{id}/streams/key)"
)


_RESPONSE: TypeAdapter[ModelResponse] = TypeAdapter(ModelResponse)
"""A model response as JSON and back: only the fields that were set, under their aliases,
so the items read back are the ones the model returned (``to_input_items`` included)."""


@dataclasses.dataclass(frozen=True)
class _Options:
    stream: str | None
    retry: RetryPolicy | None


def _as_step(name: str, retry: RetryPolicy | None, body: Callable[[], Awaitable[Any]]) -> Any:
    """``body`` with its step's name and retries, for ``ctx.step``."""
    return step(name=name, retry=retry)(body)


class DurableModel(Model):
    """A model whose every call in a workflow is a step named ``step_name``; the response
    goes through the journal as JSON, so a replay hands back the very same items."""

    def __init__(
        self,
        model: Model,
        step_name: str,
        *,
        stream: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.wrapped = model
        self.step_name = step_name
        self._options = _Options(stream, retry)

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        args = (system_instructions, input, model_settings, tools, output_schema, handoffs)
        kwargs: dict[str, Any] = {
            "previous_response_id": previous_response_id,
            "conversation_id": conversation_id,
            "prompt": prompt,
        }
        ctx = current_context()
        if ctx is None:
            return await self.wrapped.get_response(*args, tracing, **kwargs)
        key = self._options.stream

        async def call_model() -> dict[str, Any]:
            if key is None:
                response = await self.wrapped.get_response(*args, tracing, **kwargs)
            else:
                events = self.wrapped.stream_response(*args, tracing, **kwargs)
                response = await _publish_response(events, key)
            data: dict[str, Any] = _RESPONSE.dump_python(
                response, mode="json", by_alias=True, exclude_unset=True
            )
            charge_model_call(data.get("usage") or {}, _model_name(self.wrapped), None)
            return data

        data = await ctx.step(_as_step(self.step_name, self._options.retry, call_model))
        return _RESPONSE.validate_python(data)

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        """The wrapped model's stream, outside a workflow; refused inside one, where
        ``Runner.run_streamed`` is refused too (``stream="key"`` streams durably)."""
        if current_context() is not None:
            raise DurableError(_NO_RUN_STREAMED)
        async for event in self.wrapped.stream_response(*args, **kwargs):
            yield event

    def get_retry_advice(self, request: Any) -> Any:
        return self.wrapped.get_retry_advice(request)

    def _supports_default_prompt_cache_key(self) -> bool:
        """Whether the SDK may give the wrapped model its generated prompt cache key."""
        supports = getattr(self.wrapped, "_supports_default_prompt_cache_key", None)
        return bool(supports()) if callable(supports) else False

    async def _cleanup_on_run_end(self, owner: object) -> None:
        await self.wrapped._cleanup_on_run_end(owner)

    async def close(self) -> None:
        await self.wrapped.close()


async def _publish_response(events: AsyncIterator[TResponseStreamEvent], key: str) -> ModelResponse:
    """Write each event of a model's stream to the durable stream ``key`` (inside the
    step: tagged with its attempt) and return the response it completes with."""
    done: list[Any] = []
    try:
        async for event in events:
            await write_stream(key, _event_value(event))
            if event.type == "response.output_item.done":
                done.append(event.item)
            elif event.type == "response.completed":
                response = event.response
                return ModelResponse(
                    output=list(response.output) or done,
                    usage=_usage(response.usage),
                    response_id=response.id,
                )
            elif event.type in ("response.failed", "response.incomplete", "error"):
                raise ModelBehaviorError(f"the model's stream ended with {event.type!r}")
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
    raise ModelBehaviorError("the model's stream ended without a response.completed event")


def _event_value(event: TResponseStreamEvent) -> dict[str, Any]:
    """A model's stream event as the durable stream keeps it. An event that carries the
    whole response (``response.created``, ``response.completed``, ...) keeps only what
    says which and how it went: the output is in the other events and the step's result,
    and the instructions and tools it repeats would cost each reader again."""
    value: dict[str, Any] = event.model_dump(mode="json", by_alias=True)
    response = value.get("response")
    if isinstance(response, dict):
        value["response"] = {name: response.get(name) for name in _RESPONSE_KEPT}
    return value


_RESPONSE_KEPT = ("id", "model", "status", "usage", "error", "incomplete_details")


def _usage(usage: ResponseUsage | None) -> Usage:
    if usage is None:
        return Usage(requests=1)
    return Usage(
        requests=1,
        input_tokens=usage.input_tokens,
        input_tokens_details=usage.input_tokens_details,
        output_tokens=usage.output_tokens,
        output_tokens_details=usage.output_tokens_details,
        total_tokens=usage.total_tokens,
    )


def _model_name(model: Model) -> str | None:
    """The model's name as its provider knows it (``gpt-4o``), for pricing; None if the
    model does not say."""
    name = getattr(model, "model", None)
    return name if isinstance(name, str) else None
