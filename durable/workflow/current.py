"""Context variables that say where the running code is: which runtime, run, step."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from durable.runtime.runtime import Runtime
    from durable.workflow.context import WorkflowContext
    from durable.workflow.step_info import StepScope

runtime: ContextVar[Runtime | None] = ContextVar("durable_runtime", default=None)
context: ContextVar[WorkflowContext | None] = ContextVar("durable_context", default=None)
step: ContextVar[StepScope | None] = ContextVar("durable_step", default=None)
