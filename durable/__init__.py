"""durable: embedded durable workflows for async Python on one SQLite file."""

from ._check import CheckReport, DivergedRun, InterruptedStep
from ._clock import Clock, SystemClock, VirtualClock
from ._composition import ChildHandle
from ._context import WorkflowContext
from ._handle import RunHandle
from ._info import PendingWait, RunInfo, RunStatus
from ._metrics import Metrics
from ._queues import Queue, QueueStatus, ScheduleInfo
from ._runtime import Runtime
from ._script import run
from ._state import WorkflowState
from ._step_info import RetryContext, StepInfo, step_info
from ._streams import write_stream
from ._workflow import Workflow, step, workflow
from .errors import (
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
from .retry import RetryPolicy

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
    "run",
    "step",
    "step_info",
    "workflow",
    "write_stream",
]
