"""durable: embedded durable workflows for async Python on one SQLite file."""

from ._check import CheckReport, DivergedRun, InterruptedStep
from ._clock import Clock, SystemClock, VirtualClock
from ._context import WorkflowContext
from ._handle import RunHandle
from ._info import PendingWait, RunInfo, RunStatus
from ._runtime import Runtime, run
from ._step_info import RetryContext, StepInfo, step_info
from ._workflow import Workflow, step, workflow
from .errors import (
    CorruptJournal,
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
)
from .retry import RetryPolicy

__all__ = [
    "CheckReport",
    "Clock",
    "CorruptJournal",
    "DivergedRun",
    "DurableError",
    "IdempotencyKeyMismatch",
    "InterruptedStep",
    "InvalidResponse",
    "NoPendingWait",
    "NonDeterminismError",
    "PendingWait",
    "RecoveryLimit",
    "RetryContext",
    "RetryPolicy",
    "RunHandle",
    "RunInfo",
    "RunNotFound",
    "RunStatus",
    "Runtime",
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
    "run",
    "step",
    "step_info",
    "workflow",
]
