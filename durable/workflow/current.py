"""Context variables that say where the running code is: which runtime, run, step."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from durable.workflow.context import WorkflowContext
    from durable.workflow.step_info import StepScope


class Starter(Protocol):
    """The open runtime, as a workflow called outside any run sees it."""

    def start_run(self, wf: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Awaitable[Any]:
        """Start a run of ``wf``; what it returns has an awaitable ``result()``."""
        ...


runtime: ContextVar[Starter | None] = ContextVar("durable_runtime", default=None)
context: ContextVar[WorkflowContext | None] = ContextVar("durable_context", default=None)
step: ContextVar[StepScope | None] = ContextVar("durable_step", default=None)
