"""``step_info()``: what a running step knows about itself and its earlier attempts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from . import _current
from ._codec import loads
from ._journal import Attempts
from .errors import DurableError

PriorStatus = Literal["none", "failed", "gated_not_completed", "completed"]


@dataclass(frozen=True)
class RetryContext:
    """The step's earlier attempts, as the journal recorded them.

    ``prior_completion_status`` is ``"gated_not_completed"`` when an earlier
    attempt started and its end was never journaled (the process died
    mid-step): the external effect may or may not have happened.
    """

    gate_count: int
    completion_count: int
    prior_completion_status: PriorStatus
    prior_error: dict[str, Any] | None
    first_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None


@dataclass(frozen=True)
class StepInfo:
    """Who is running: run, workflow, step, position, attempt, and the idempotency key.

    ``idempotency_key`` is the same on every retry, crash re-run and replay of
    this step, and differs between steps and runs: pass it to payment and
    provisioning APIs so they de-duplicate.
    """

    run_id: str
    workflow: str
    step: str
    position: int
    attempt: int
    idempotency_key: str
    retry: RetryContext
    prior_output: Any = None
    _prior_output_json: str | None = dataclasses.field(default=None, repr=False, compare=False)


def idempotency_key(run_id: str, position: int, step: str) -> str:
    digest = hashlib.sha256(f"{run_id}\x00{position}\x00{step}".encode()).hexdigest()[:32]
    return f"{digest}-{step[:64]}"


def _moment(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def make_step_info(
    run_id: str, workflow: str, step: str, position: int, prior: Attempts, started_at: float
) -> StepInfo:
    """The info of a new attempt, started at ``started_at`` after the ``prior`` ones."""
    retry = RetryContext(
        gate_count=prior.gate_count + 1,
        completion_count=prior.completion_count,
        prior_completion_status=prior.prior_status,  # type: ignore[arg-type]
        prior_error=prior.prior_error,
        first_attempt_at=_moment(prior.first_attempt_at or started_at),
        last_attempt_at=_moment(started_at),
    )
    return StepInfo(
        run_id=run_id,
        workflow=workflow,
        step=step,
        position=position,
        attempt=prior.gate_count + 1,
        idempotency_key=idempotency_key(run_id, position, step),
        retry=retry,
        _prior_output_json=prior.prior_output,
    )


def step_info(*, include_prior_output: bool = False) -> StepInfo:
    """The ``StepInfo`` of the step running in this task or thread.

    With ``include_prior_output=True``, ``prior_output`` holds the output of
    the earlier completion of this step (after ``rt.rerun_from``), as JSON data.
    """
    info = _current.step.get()
    if info is None:
        raise DurableError(
            "durable.step_info() was called outside a step; call it inside a function run"
            " by ctx.step(...) or a @durable.step function awaited in a workflow"
        )
    if include_prior_output and info._prior_output_json is not None:
        return dataclasses.replace(info, prior_output=loads(info._prior_output_json))
    return info
