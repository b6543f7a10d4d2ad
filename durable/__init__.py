"""durable: embedded durable workflows for async Python on one SQLite file."""

from durable._base.clock import Clock, SystemClock, VirtualClock
from durable.errors import (
    BudgetExceeded,
    CorruptJournal,
    DuplicateInQueue,
    DurableError,
    IdempotencyKeyMismatch,
    InvalidResponse,
    NoBudget,
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
from durable.journal.budget import Budget, Spend, StepUsage, Usage
from durable.journal.info import PendingWait, RunInfo, RunStatus
from durable.journal.streams import StreamItem
from durable.observe.metrics import Metrics
from durable.retry import RetryPolicy
from durable.runtime.check import CheckReport, DivergedRun, InterruptedStep
from durable.runtime.handle import RunHandle
from durable.runtime.runtime import Runtime
from durable.runtime.script import run
from durable.workflow.budget import charge
from durable.workflow.composition import ChildHandle
from durable.workflow.context import WorkflowContext
from durable.workflow.current import current_context, in_step
from durable.workflow.decorators import Workflow, step, workflow
from durable.workflow.queues import Queue, QueueStatus, ScheduleInfo
from durable.workflow.state import WorkflowState
from durable.workflow.step_info import RetryContext, StepInfo, step_info
from durable.workflow.stream import write_stream

__all__ = [
    "Budget",
    "BudgetExceeded",
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
    "NoBudget",
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
    "Spend",
    "StepFailed",
    "StepInfo",
    "StepInterrupted",
    "StepTimeout",
    "StepUsage",
    "StoreUnavailable",
    "StreamItem",
    "SystemClock",
    "Usage",
    "VirtualClock",
    "WaitTimeout",
    "Workflow",
    "WorkflowCancelled",
    "WorkflowContext",
    "WorkflowFailed",
    "WorkflowState",
    "WorkflowTimeout",
    "charge",
    "current_context",
    "in_step",
    "run",
    "step",
    "step_info",
    "workflow",
    "write_stream",
]
