"""Replaying a run's journal against the current code, with no side effects.

The workflow runs on a host that answers every durable call from the
journal and never executes a step: where the code asks for something the
journal does not have (a step that never finished, a wait never answered,
a call past the end), the replay stops there, successfully. A call that
differs from the journaled one is the divergence it reports. Used by
``durable.testing.replay`` (golden histories) and ``rt.check()`` (every unfinished run).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

from durable._base.clock import Clock, VirtualClock
from durable.errors import CorruptJournal, NonDeterminismError
from durable.journal.records import EventRecord, RunRecord
from durable.journal.run_journal import RunJournal, unreplayed
from durable.workflow import current as _current
from durable.workflow.context import WorkflowContext
from durable.workflow.decorators import Workflow
from durable.workflow.host import Unobserved


class _EndOfHistory(BaseException):
    """The code asked for what the journal does not have: the replay ends there."""


class _NoBudget:
    """A replayed history's budget side: reached only past the history's end."""

    def charge(self, step: str, record: str) -> None:
        raise _EndOfHistory

    async def over_budget(self) -> dict[str, Any] | None:
        raise _EndOfHistory


class _ReplayHost:
    """A ``RunHost`` that answers from a recorded history and can write nothing."""

    def __init__(
        self, run_id: str, workflow: str, events: list[EventRecord], updated_at: float
    ) -> None:
        self.run_id = run_id
        self.workflow_name = workflow
        self.journal = RunJournal(events)
        latest = max([updated_at, *(e.created_at for e in events)])
        self.clock: Clock = VirtualClock(start=latest, auto_skip=False)
        self.max_value_bytes: int | None = None
        self.telemetry = Unobserved()  # no step runs here
        self.budget = _NoBudget()
        self._fatal: NonDeterminismError | CorruptJournal | None = None

    async def append(self, position: int, kind: str, name: str, payload: str) -> EventRecord:
        raise _EndOfHistory

    def append_nowait(self, position: int, kind: str, name: str, payload: str) -> None:
        raise _EndOfHistory

    def publish(self, position: int, kind: str, name: str, payload: str) -> None:
        raise _EndOfHistory

    async def suspend(self, status: str, deadline: float | None, message: str | None) -> None:
        raise _EndOfHistory

    async def start_child(
        self, wf: Workflow[Any, Any], args: Sequence[Any], kwargs: dict[str, Any], run_id: str
    ) -> None:
        raise _EndOfHistory

    async def read_run(self, run_id: str) -> RunRecord | None:
        raise _EndOfHistory

    def watch_end(self, run_id: str, message: str) -> None:
        raise _EndOfHistory

    def emit(self, values: Sequence[tuple[str, str, float]]) -> asyncio.Future[Any]:
        raise _EndOfHistory

    def void(self, position: int, attempt: int) -> None:
        return None  # no step runs in a replayed history, so none has values to void

    async def send(self, run_id: str, name: str, payload: str, key: str) -> None:
        raise _EndOfHistory

    def check_running(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def fatal(self, error: NonDeterminismError | CorruptJournal) -> None:
        self._fatal = error

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        yield


async def divergence(
    workflow: Workflow[Any, Any],
    run_id: str,
    input_text: str,
    events: list[EventRecord],
    updated_at: float,
) -> NonDeterminismError | CorruptJournal | None:
    """Where ``workflow``'s current code departs from the run's journal, or None."""
    host = _ReplayHost(run_id, workflow.name, events, updated_at)

    async def drive() -> NonDeterminismError | CorruptJournal | None:
        ctx = WorkflowContext(host)
        _current.context.set(ctx)
        args, kwargs = workflow.decode_arguments(input_text)
        try:
            inspect.signature(workflow.fn).bind(ctx, *args, **kwargs)
        except TypeError as error:
            return NonDeterminismError(
                0, f"the input {input_text}", f"{workflow.name}{_parameters(workflow)}: {error}"
            )
        try:
            await workflow.fn(ctx, *args, **kwargs)
        except _EndOfHistory:
            return host._fatal
        except Exception as error:
            if host._fatal is not None:
                return host._fatal
            # The workflow's own error: as journaled when it is the end of the history;
            # before the journal's end, the code now fails where the run went on.
            left = unreplayed(host.journal, ctx._positions_used())
            if left is None:
                return None
            raised = f"the workflow raising {type(error).__name__}: {error}"
            return NonDeterminismError(left.position, left.expected, raised)
        if host._fatal is not None:
            return host._fatal
        return unreplayed(host.journal, ctx._positions_used())

    return await asyncio.create_task(drive())


def _parameters(workflow: Workflow[Any, Any]) -> str:
    """The workflow function's parameter names: ``(ctx, order_id)``."""
    return f"({', '.join(inspect.signature(workflow.fn).parameters)})"
