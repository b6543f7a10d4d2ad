"""The error hierarchy. Every error carries a stable string ``code``.

Errors that reach a workflow from the journal (a failed step, a timed-out
wait) are rebuilt from their stored ``{"code", "type", "message"}`` record, so
the workflow sees the same exception on its first run and on every replay.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DurableError(Exception):
    """Base of every error this library raises; ``code`` is stable across releases."""

    code: ClassVar[str] = "DURABLE"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready form stored in the journal and in ``RunInfo.error``."""
        return {"code": self.code, "type": type(self).__name__, "message": self.message}


class StepFailed(DurableError):
    """A step ran out of attempts (or failed with a non-retryable error)."""

    code = "STEP_FAILED"

    def __init__(self, step: str, error_type: str, message: str, attempts: int) -> None:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        super().__init__(f"step {step!r} failed after {tries}: {error_type}: {message}")
        self.message = message
        """The original exception's message, as it was (``str()`` tells the whole story)."""
        self.step = step
        self.error_type = error_type
        self.attempts = attempts

    def to_record(self) -> dict[str, Any]:
        return {
            **super().to_record(),
            "step": self.step,
            "error_type": self.error_type,
            "cause": self.message,
            "attempts": self.attempts,
        }


class WorkflowFailed(DurableError):
    """Raised by ``RunHandle.result()`` when the run ended ``failed``."""

    code = "WORKFLOW_FAILED"

    def __init__(self, run_id: str, error: dict[str, Any]) -> None:
        detail = error.get("message")
        if error.get("code") == StepFailed.code and "error_type" in error:
            # The step's own story: which step, how many attempts, the original error.
            detail = str(error_from_record(error))
        super().__init__(
            f"run {run_id!r} failed: {error.get('type')}: {detail} (code {error.get('code')})"
        )
        self.run_id = run_id
        self.error = error


class WorkflowCancelled(DurableError):
    """Raised by ``RunHandle.result()`` when the run was cancelled."""

    code = "WORKFLOW_CANCELLED"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} was cancelled")
        self.run_id = run_id


class NonDeterminismError(DurableError):
    """Replayed code made a different durable call than the journal recorded."""

    code = "NON_DETERMINISM"

    def __init__(self, position: int, expected: str, received: str) -> None:
        super().__init__(
            f"non-deterministic workflow: at position {position} the journal has {expected}"
            f" but the code now calls {received}. Make the workflow take the same durable calls"
            " in the same order (or deploy the change under a new workflow version), then"
            " rt.resume() the run; its journal was left untouched."
        )
        self.position = position
        self.expected = expected
        self.received = received


class IdempotencyKeyMismatch(DurableError):
    """``start`` reused a ``run_id`` with another workflow, version or input: ``expected``
    and ``received`` are the input digests (or, for a version, the two versions)."""

    code = "IDEMPOTENCY_KEY_MISMATCH"

    def __init__(self, run_id: str, expected: str, received: str, what: str = "input") -> None:
        if what == "version":
            super().__init__(
                f"run_id {run_id!r} already names a run of another version of the workflow"
                f" (stored {expected}, this call {received}); use a new run_id, or start it"
                " with the workflow of the stored version"
            )
        else:
            super().__init__(
                f"run_id {run_id!r} already names a run with another workflow or input"
                f" (stored digest {expected}, this call {received}); use a new run_id"
                " or the original arguments"
            )
        self.run_id = run_id
        self.expected = expected
        self.received = received


class SerializationError(DurableError):
    """A value cannot be stored as JSON, or cannot be read back as its annotated type."""

    code = "SERIALIZATION"


class RunNotFound(DurableError):
    code = "RUN_NOT_FOUND"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r} in this journal")
        self.run_id = run_id

    def to_record(self) -> dict[str, Any]:
        return {**super().to_record(), "run_id": self.run_id}


class NoPendingWait(DurableError):
    code = "NO_PENDING_WAIT"


class InvalidResponse(DurableError):
    code = "INVALID_RESPONSE"


class WaitTimeout(DurableError):
    code = "WAIT_TIMEOUT"


class StepTimeout(DurableError):
    code = "STEP_TIMEOUT"


class CorruptJournal(DurableError):
    """A run's journal cannot be read; the run is stopped and its journal left as it is."""

    code = "CORRUPT_JOURNAL"


class RecoveryLimit(DurableError):
    """A run was recovered ``max_recoveries`` times in a row without progress (its
    process died each time it ran); it was failed instead of being resumed again."""

    code = "RECOVERY_LIMIT"


class StoreUnavailable(DurableError):
    """The journal could not be written or read past the retries (a database that
    stayed away, a full disk, a lock held elsewhere), or a write's outcome is unknown.
    Runs are let go and claimed again once it answers; the journal says what committed."""

    code = "STORE_UNAVAILABLE"


class WorkflowTimeout(DurableError):
    """A run's deadline (``@workflow(timeout=...)``, ``start_run(timeout=...)``) passed
    before it ended; the run ended ``failed`` with this error."""

    code = "WORKFLOW_TIMEOUT"


class DuplicateInQueue(DurableError):
    """A run was started in a queue with the ``dedup_key`` of a run of that queue that is
    still queued or running; ``run_id`` names that run."""

    code = "DUPLICATE_IN_QUEUE"

    def __init__(self, queue: str, dedup_key: str, run_id: str) -> None:
        super().__init__(
            f"queue {queue!r} already has run {run_id!r} with dedup_key {dedup_key!r}, still"
            " queued or running; wait for it to end, or use another dedup_key"
        )
        self.queue = queue
        self.dedup_key = dedup_key
        self.run_id = run_id


class BudgetExceeded(DurableError):
    """A person answered ``"stop"`` when the run's budget was reached: the step or child
    was not started. Raised at that call, so the workflow can wrap up."""

    code = "BUDGET_EXCEEDED"


class NoBudget(DurableError):
    """``rt.raise_budget`` on a run with no budget over it: nothing was raised."""

    code = "NO_BUDGET"


class StepInterrupted(DurableError):
    """An ``at_most_once`` step started earlier and never finished; it was not run again."""

    code = "STEP_INTERRUPTED"


_BY_CODE: dict[str, type[DurableError]] = {
    cls.code: cls
    for cls in (
        BudgetExceeded,
        CorruptJournal,
        RecoveryLimit,
        SerializationError,
        StoreUnavailable,
        NoPendingWait,
        InvalidResponse,
        NoBudget,
        WaitTimeout,
        StepTimeout,
        StepInterrupted,
        WorkflowTimeout,
    )
}


def error_from_record(record: dict[str, Any]) -> DurableError:
    """Rebuild the exception a journaled failure record stands for."""
    code = record.get("code")
    message = str(record.get("message", ""))
    if code == StepFailed.code:
        return StepFailed(
            str(record.get("step", "")),
            str(record.get("error_type", "")),
            str(record.get("cause", "")),
            int(record.get("attempts", 0)),
        )
    if code == RunNotFound.code and isinstance(record.get("run_id"), str):
        return RunNotFound(record["run_id"])
    cls = _BY_CODE.get(str(code))
    if cls is not None:
        return cls(message)
    error = DurableError(message)
    error.code = str(code)  # type: ignore[misc]
    return error


__all__ = [
    "BudgetExceeded",
    "CorruptJournal",
    "DuplicateInQueue",
    "DurableError",
    "IdempotencyKeyMismatch",
    "InvalidResponse",
    "NoBudget",
    "NoPendingWait",
    "NonDeterminismError",
    "RecoveryLimit",
    "RunNotFound",
    "SerializationError",
    "StepFailed",
    "StepInterrupted",
    "StepTimeout",
    "StoreUnavailable",
    "WaitTimeout",
    "WorkflowCancelled",
    "WorkflowFailed",
    "WorkflowTimeout",
    "error_from_record",
]
