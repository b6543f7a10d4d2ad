"""``RunHost``: what a workflow's context needs from the run it belongs to (a live
run journals and runs; a replayed history only answers), so the context never
touches storage itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from durable._base.clock import Clock
from durable.errors import CorruptJournal, NonDeterminismError
from durable.journal.records import EventRecord, RunRecord

if TYPE_CHECKING:
    from durable.journal.run_journal import RunJournal
    from durable.workflow.decorators import Workflow
    from durable.workflow.step_info import StepScope


class StepObserver(Protocol):
    """Who hears of each step attempt as it begins and ends (counters, spans)."""

    def step_began(self, scope: StepScope) -> Any:
        """An attempt begins; what is returned is handed back to ``step_ended``."""
        ...

    def step_ended(
        self, scope: StepScope, span: Any, error: BaseException | None = None, retried: bool = False
    ) -> None: ...


class Unobserved:
    """A ``StepObserver`` that hears nothing, for hosts where no step runs."""

    def step_began(self, scope: StepScope) -> None:
        return None

    def step_ended(
        self, scope: StepScope, span: Any, error: BaseException | None = None, retried: bool = False
    ) -> None:
        return None


class BudgetHost(Protocol):
    """A run's budget side: the spend its steps record, the check before each call."""

    def charge(self, step: str, record: str) -> None:
        """Journal spend the running step recorded (``durable.charge``) as an event
        without a position: not waited for, committed before any later write of this
        run. Callable from a step's worker thread."""
        ...

    async def over_budget(self) -> dict[str, Any] | None:
        """Whether a budget over this run is reached, counting every charge made so far:
        None, or the question to ask (``question``) with the holder, the unit, what was
        spent and the cap."""
        ...


class RunHost(Protocol):
    """What the context needs from the runtime for one run."""

    run_id: str
    workflow_name: str
    journal: RunJournal
    clock: Clock
    max_value_bytes: int | None

    @property
    def budget(self) -> BudgetHost:
        """The run's spend and its budget check."""
        ...

    @property
    def telemetry(self) -> StepObserver:
        """Who hears of the run's step attempts."""
        ...

    async def append(self, position: int, kind: str, name: str, payload: str) -> EventRecord:
        """Journal an event and wait until it is committed."""
        ...

    def append_nowait(self, position: int, kind: str, name: str, payload: str) -> None:
        """Journal the event that ends a durable call (not kept in the running journal):
        it is committed before any later write of this run."""
        ...

    def publish(self, position: int, kind: str, name: str, payload: str) -> None:
        """Journal an event others may be waiting to read (``ctx.state``): not waited
        for, committed before any later write of this run, and announced once it is."""
        ...

    async def suspend(self, status: str, deadline: float | None, message: str | None) -> None:
        """Wait until ``deadline`` passes or a message called ``message`` arrives."""
        ...

    def emit(self, values: Sequence[tuple[str, str, float]]) -> asyncio.Future[Any]:
        """Journal a step's stream values, each ``(key, payload, moment written)``, as
        events without a position in one write: queued behind the run's earlier writes
        and before its later ones, not waited for. The future is done once they are
        committed or refused; a refusal stops the run (``check_running`` raises)."""
        ...

    def void(self, position: int, attempt: int) -> None:
        """A step attempt that handed stream values to ``emit`` was cancelled: journal
        that they are void (an event without a position, queued as ``emit``'s are), unless
        the run itself was stopped (its cancel voids them, or its next copy re-runs the
        step). Never raises: it is called while the attempt is being cancelled."""
        ...

    async def start_child(
        self,
        wf: Workflow[Any, Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        run_id: str,
    ) -> None:
        """Start ``wf`` as a child run of this one under ``run_id`` (a no-op if a run of
        ``wf`` with this input exists under that id, whoever started it: it is attached);
        SerializationError or IdempotencyKeyMismatch otherwise."""
        ...

    async def read_run(self, run_id: str) -> RunRecord | None:
        """Another run's row as the store has it now."""
        ...

    def watch_end(self, run_id: str, message: str) -> None:
        """Wake this run's waits for ``message`` once run ``run_id`` has ended (a run
        attached as a child that is not this run's own: nothing else tells it)."""
        ...

    async def send(self, run_id: str, name: str, payload: str, key: str) -> None:
        """Send an event to another run, once per ``key``: RunNotFound or RunEnded."""
        ...

    def check_running(self) -> None:
        """Raise if the run must stop (cancelled, or already found non-deterministic)."""
        ...

    def fatal(self, error: NonDeterminismError | CorruptJournal) -> None:
        """Record an error the workflow may not swallow: the run fails with it."""
        ...

    def working(self) -> contextlib.AbstractContextManager[None]:
        """Mark the run busy (a step body is running) for as long as the block lasts."""
        ...
