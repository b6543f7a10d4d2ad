"""durable: embedded durable workflows for async Python on one SQLite file."""

from durable._base.clock import Clock, SystemClock, VirtualClock
from durable.errors import (
    CorruptJournal,
    DuplicateInQueue,
    DurableError,
    IdempotencyKeyMismatch,
    InvalidResponse,
    NonDeterminismError,
    NoPendingWait,
    RecoveryLimit,
    RunNotFound,
    SerializationError,
    StepFailed,
    StepInterrupted,
    StepTimeout,
    StoreUnavailable,
    WaitTimeout,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowTimeout,
)
from durable.journal.info import PendingWait, RunInfo, RunStatus
from durable.observe.metrics import Metrics
from durable.retry import RetryPolicy
from durable.runtime.check import CheckReport, DivergedRun, InterruptedStep
from durable.runtime.handle import RunHandle
from durable.runtime.runtime import Runtime
from durable.runtime.script import run
from durable.workflow.composition import ChildHandle
from durable.workflow.context import WorkflowContext
from durable.workflow.current import current_context, in_step
from durable.workflow.decorators import Workflow, step, workflow
from durable.workflow.queues import Queue, QueueStatus, ScheduleInfo
from durable.workflow.state import WorkflowState
from durable.workflow.step_info import RetryContext, StepInfo, step_info
from durable.workflow.stream import write_stream

__all__ = [
    "CheckReport",
    "ChildHandle",
    "Clock",
    "CorruptJournal",
    "DivergedRun",
    "DuplicateInQueue",
    "DurableError",
    "IdempotencyKeyMismatch",
    "InterruptedStep",
    "InvalidResponse",
    "Metrics",
    "NoPendingWait",
    "NonDeterminismError",
    "PendingWait",
    "Queue",
    "QueueStatus",
    "RecoveryLimit",
    "RetryContext",
    "RetryPolicy",
    "RunHandle",
    "RunInfo",
    "RunNotFound",
    "RunStatus",
    "Runtime",
    "ScheduleInfo",
    "SerializationError",
    "StepFailed",
    "StepInfo",
    "StepInterrupted",
    "StepTimeout",
    "StoreUnavailable",
    "SystemClock",
    "VirtualClock",
    "WaitTimeout",
    "Workflow",
    "WorkflowCancelled",
    "WorkflowContext",
    "WorkflowFailed",
    "WorkflowState",
    "WorkflowTimeout",
    "current_context",
    "in_step",
    "run",
    "step",
    "step_info",
    "workflow",
    "write_stream",
]
