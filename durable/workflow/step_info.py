"""``step_info()``: what a running step knows about itself and its earlier attempts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from durable._base.codec import loads
from durable.errors import DurableError
from durable.journal.info import moment
from durable.journal.run_journal import Attempts
from durable.workflow import current as _current

if TYPE_CHECKING:
    from durable.workflow.host import RunHost
    from durable.workflow.stream import StepStreams

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


class StepScope:
    """What ``step_info()`` is built from; built only if the step asks for it."""

    __slots__ = (
        "_info",
        "host",
        "position",
        "prior",
        "run_id",
        "started_at",
        "step",
        "streams",
        "workflow",
    )

    def __init__(
        self,
        run_id: str,
        workflow: str,
        step: str,
        position: int,
        prior: Attempts,
        started_at: float,
        host: RunHost | None = None,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.step = step
        self.position = position
        self.prior = prior
        self.started_at = started_at
        self.host = host
        """The run the step belongs to, for what a step body writes (its streams)."""
        self.streams: StepStreams | None = None
        """The stream values the attempt wrote and that wait to be written together."""
        self._info: StepInfo | None = None

    @property
    def attempt(self) -> int:
        return self.prior.gate_count + 1

    def info(self) -> StepInfo:
        if self._info is None:
            self._info = _make_info(self)
        return self._info


def _make_info(scope: StepScope) -> StepInfo:
    prior = scope.prior
    retry = RetryContext(
        gate_count=prior.gate_count + 1,
        completion_count=prior.completion_count,
        prior_completion_status=prior.prior_status,  # type: ignore[arg-type]
        prior_error=prior.prior_error,
        first_attempt_at=moment(prior.first_attempt_at or scope.started_at),
        last_attempt_at=moment(scope.started_at),
    )
    return StepInfo(
        run_id=scope.run_id,
        workflow=scope.workflow,
        step=scope.step,
        position=scope.position,
        attempt=scope.attempt,
        idempotency_key=idempotency_key(scope.run_id, scope.position, scope.step),
        retry=retry,
        _prior_output_json=prior.prior_output,
    )


def step_info(*, include_prior_output: bool = False) -> StepInfo:
    """The ``StepInfo`` of the step running in this task or thread.

    With ``include_prior_output=True``, ``prior_output`` holds the output of
    the earlier completion of this step (after ``rt.rerun_from``), as JSON data.
    """
    scope = _current.step.get()
    if scope is None:
        raise DurableError(
            "durable.step_info() was called outside a step; call it inside a function run"
            " by ctx.step(...) or a @durable.step function awaited in a workflow"
        )
    info = scope.info()
    if include_prior_output and info._prior_output_json is not None:
        return dataclasses.replace(info, prior_output=loads(info._prior_output_json))
    return info
