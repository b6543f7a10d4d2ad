"""Context variables that say where the running code is: which runtime, run, step.

``current_context`` and ``in_step`` are their public reading, for libraries and
tools that run inside a workflow but cannot be handed its ``ctx``.
"""

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


def current_context() -> WorkflowContext | None:
    """The ``WorkflowContext`` of the workflow whose code is running, for a library or a
    tool that cannot be handed ``ctx``; None outside a workflow and inside a step's body
    (durable calls belong to the workflow, not to its steps)."""
    return context.get()


def in_step() -> bool:
    """Whether the running code is inside a step's body (in its task, its worker thread,
    or a task it started): there ``durable.step_info()`` works and durable calls on a
    ``ctx`` are refused."""
    return step.get() is not None
