"""Context variables that say where the running code is: which runtime, run, step."""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from durable.workflow.context import WorkflowContext
    from durable.workflow.decorators import Workflow
    from durable.workflow.step_info import StepScope

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Outcome(Protocol[R_co]):
    async def result(self) -> R_co: ...


class Starts(Protocol):
    """The open runtime, as a workflow called outside any run uses it."""

    async def start_run(
        self, wf: Workflow[Any, R], args: Sequence[Any], kwargs: dict[str, Any]
    ) -> Outcome[R]: ...


runtime: ContextVar[Starts | None] = ContextVar("durable_runtime", default=None)
context: ContextVar[WorkflowContext | None] = ContextVar("durable_context", default=None)
step: ContextVar[StepScope | None] = ContextVar("durable_step", default=None)
