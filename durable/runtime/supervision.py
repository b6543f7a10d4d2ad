"""``Supervisor``: the runtime as its live runs see it; ``Supervision`` implements it.

A live run tells it when it parks, ends or loses its claim, and reaches other
runs through it. Those calls go to parts that also need the live runs' home
(``residency``), so this is where the parts that need each other both ways
meet: it is built first, the parts get it, and ``connect`` hands it the parts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from durable._base.clock import Clock
from durable.journal.kinds import child_message
from durable.observe.telemetry import Telemetry
from durable.runtime.changes import Changes
from durable.runtime.options import RuntimeOptions
from durable.runtime.timers import Timers
from durable.store.ports import Store
from durable.workflow.decorators import Workflow

if TYPE_CHECKING:
    from durable.runtime.admission import Admission
    from durable.runtime.answers import Answers
    from durable.runtime.control import Control
    from durable.runtime.live_run import LiveRun
    from durable.runtime.ownership import Ownership
    from durable.runtime.residency import Residency
    from durable.runtime.results import Results
    from durable.runtime.starting import Starter


class Supervisor(Protocol):
    """The runtime as a live run sees it: what the run writes and waits through, the
    other runs it reaches, and what it tells the runtime about itself."""

    store: Store
    clock: Clock
    timers: Timers
    telemetry: Telemetry
    options: RuntimeOptions

    async def start_child(
        self,
        wf: Workflow[Any, Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        run_id: str,
        parent_run_id: str,
    ) -> None: ...

    def watch_end(self, run_id: str, watcher: str, message: str) -> None: ...

    async def send(self, run_id: str, name: str, payload: str, key: str) -> None: ...

    def published(self) -> None:
        """The run committed something readers here may be waiting for."""

    def note_suspended(self, live: LiveRun) -> None: ...

    def forget(self, live: LiveRun) -> None:
        """This incarnation of the run no longer runs here."""

    def reclaim_later(self, run_id: str) -> None:
        """Claim the run again once the database answers."""

    def expire(self, run_id: str) -> None:
        """The run's deadline passed."""

    def hand_on_slot(self) -> bool:
        """The run of a queue is ending: admit the next behind its end write."""

    def run_ended(self, live: LiveRun) -> None: ...


@dataclasses.dataclass(frozen=True)
class Parts:
    """The parts a live run's news goes to."""

    residency: Residency
    ownership: Ownership
    admission: Admission
    starter: Starter
    control: Control
    results: Results
    answers: Answers


class Supervision:
    """Implements ``Supervisor`` and ``residency.Host`` over the runtime's parts."""

    parts: Parts

    def __init__(
        self,
        store: Store,
        clock: Clock,
        timers: Timers,
        telemetry: Telemetry,
        options: RuntimeOptions,
        changes: Changes,
    ) -> None:
        self.store = store
        self.clock = clock
        self.timers = timers
        self.telemetry = telemetry
        self.options = options
        self.changes = changes

    def connect(self, parts: Parts) -> None:
        self.parts = parts

    async def start_child(
        self,
        wf: Workflow[Any, Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        run_id: str,
        parent_run_id: str,
    ) -> None:
        starter = self.parts.starter
        await starter.start(wf, args, kwargs, run_id=run_id, parent_run_id=parent_run_id)

    def watch_end(self, run_id: str, watcher: str, message: str) -> None:
        self.parts.results.nudge_at_end(run_id, watcher, message)

    async def send(self, run_id: str, name: str, payload: str, key: str) -> None:
        await self.parts.answers.deliver(run_id, name, payload, key)

    def published(self) -> None:
        self.changes.notify()

    def note_suspended(self, live: LiveRun) -> None:
        self.parts.residency.note_suspended(live)
        self.changes.notify()  # for wait_for_question

    def forget(self, live: LiveRun) -> None:
        self.parts.residency.forget(live)

    def reclaim_later(self, run_id: str) -> None:
        self.parts.ownership.reclaim_later(run_id)

    def reclaim_all(self) -> None:
        """Claim this runtime's runs that run nowhere (a lost admission's, say)."""
        self.parts.ownership.reclaim_later(None)

    async def reload(self, run_ids: list[str]) -> None:
        await self.parts.ownership.claim(include_own=True, run_ids=run_ids)

    def expire(self, run_id: str) -> None:
        self.parts.control.expire(run_id)

    def hand_on_slot(self) -> bool:
        return self.parts.admission.hand_on_slot()

    def run_ended(self, live: LiveRun) -> None:
        residency = self.parts.residency
        residency.forget(live)
        parent = live.record.parent_run_id
        if parent is not None:  # the store told the parent too; here it hears at once
            residency.nudge(parent, child_message(live.run_id))
        if live.record.queue is not None and not live.slot_handed_on:  # its slot is free
            self.parts.admission.admit_soon()
        self.changes.notify_run(live.run_id)
