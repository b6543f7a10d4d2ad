"""Questions and events: what people and other systems send to runs.

Lists unanswered ``wait_for_user`` questions, waits for one to be asked,
checks an answer against the question's options, and journals answers and
events as messages (checked in the write's own transaction: the wait still
open, the run not ended) before handing them to the run if it is here.
"""

from __future__ import annotations

import contextlib
from contextlib import aclosing
from typing import Any

from durable._base.codec import encode
from durable._base.ids import check_name
from durable._base.numbers import seconds
from durable.errors import CorruptJournal, DurableError, InvalidResponse, NoPendingWait
from durable.journal.budget import Usage
from durable.journal.info import PendingWait, RunInfo
from durable.journal.kinds import CHILD_ENDED, MESSAGE, QUESTIONS
from durable.journal.records import (
    TERMINAL,
    EventRecord,
    Expect,
    NewEvent,
    RunEnded,
    WaitAnswered,
)
from durable.journal.run_journal import RunJournal
from durable.runtime import budgets
from durable.runtime.options import RuntimeOptions
from durable.runtime.reading import Reading
from durable.runtime.residency import Residency
from durable.runtime.watch import in_time
from durable.workflow.budget import STOP

_RESERVED = (*QUESTIONS, CHILD_ENDED)


class Answers:
    """The runtime's part that takes answers and events for runs."""

    def __init__(self, reading: Reading, residency: Residency, options: RuntimeOptions) -> None:
        self.reading = reading
        self.residency = residency
        self.options = options

    async def pending(self, run_id: str | None) -> list[PendingWait]:
        reading = self.reading
        reading.lifecycle.check_open()
        if run_id is not None:
            if (await reading.record(run_id)).status in TERMINAL:
                return []  # an ended run asks nothing, whatever its journal left open
            run_ids = [run_id]
        else:
            run_ids = [record.run_id for record in await reading.unfinished()]
        journals = (await reading.store.load_events(run_ids)).values()
        return sorted(
            (wait for events in journals for wait in _unanswered(events)),
            key=lambda wait: wait.created_at,
        )

    async def wait_for_question(self, run_id: str, timeout: float | None) -> PendingWait:
        if timeout is not None:
            seconds("timeout", timeout)

        async def late() -> str:
            status = str(RunInfo.from_record(await self.reading.record(run_id)).status)
            return f"run {run_id!r} asked no question within {timeout} s; it is {status}"

        return await in_time(self._question(run_id), timeout, late)

    async def _question(self, run_id: str) -> PendingWait:
        async with aclosing(self.reading.watch(run_id, "all")) as looks:
            async for news in looks:
                waits = sorted(_unanswered(news.events), key=lambda wait: wait.created_at)
                if waits:
                    return waits[0]
        raise DurableError(f"run {run_id!r} ended {news.record.status} without asking")

    async def respond(self, run_id: str, value: Any, wait_id: str | None) -> None:
        if wait_id is not None:
            check_name("wait_id", wait_id)
        waits = [w for w in await self.pending(run_id) if wait_id in (None, w.wait_id)]
        if not waits:
            which = f" with wait_id {wait_id!r}" if wait_id is not None else ""
            raise NoPendingWait(
                f"run {run_id!r} has no unanswered wait_for_user{which};"
                " rt.pending_waits() lists the questions waiting for an answer"
            )
        wait = waits[0]
        if wait.input_type == "budget" and value != STOP:
            raise InvalidResponse(
                f"{value!r} is not an answer to a budget question; answer 'stop', or raise"
                f" the budget: rt.raise_budget({run_id!r}, usd=..., tokens=...)"
            )
        if wait.input_type in ("approval", "choice"):
            ids = [option["id"] for option in wait.options or []]
            if value not in ids:
                raise InvalidResponse(
                    f"{value!r} is not an answer to {wait.question!r}; answer one of the"
                    f" option ids {ids}"
                )
        text = encode(value, self.options.max_value_bytes)
        try:
            await self._send(run_id, wait.wait_id, text, Expect(pending_wait=wait.wait_id))
        except (RunEnded, WaitAnswered):
            raise NoPendingWait(
                f"wait {wait.wait_id!r} of run {run_id!r} was answered already"
            ) from None

    async def raise_budget(self, run_id: str, usd: float | None, tokens: int | None) -> Usage:
        """Raise the budget that holds ``run_id`` back (or the nearest over it), then let
        every run that waits on that budget go on (a question on another budget stays);
        returns the holder's usage under its new caps, as it stood when raised."""
        reading = self.reading
        reading.lifecycle.check_open()
        await reading.record(run_id)
        asked = [w for w in await self.pending(run_id) if w.input_type == "budget"]
        named = (asked[0].budget or {}).get("run_id") if asked else None
        holder, raised = await budgets.raise_caps(
            reading.store, run_id, named, usd, tokens, reading.clock.now()
        )
        usage = await budgets.usage(reading.store, holder)  # as it stands when raised
        answer = encode({"raised": raised.to_dict()})
        for member in await budgets.tree_ids(reading.store, holder):
            for wait in await self.pending(member):
                if (wait.budget or {}).get("run_id") == holder:  # a question on this budget
                    expect = Expect(pending_wait=wait.wait_id)
                    with contextlib.suppress(RunEnded, WaitAnswered):
                        await self._send(member, wait.wait_id, answer, expect)
        return usage

    async def send_event(self, run_id: str, name: str, payload: Any, key: str | None) -> None:
        check_name("run_id", run_id)
        if key is not None:
            check_name("an event's key", key)
        text = encode(payload, self.options.max_value_bytes)
        try:
            await self.deliver(run_id, name, text, key)
        except RunEnded as ended:
            raise DurableError(
                f"run {run_id!r} is {ended.status}; the event {name!r} was not stored"
            ) from None

    async def deliver(self, run_id: str, name: str, text: str, key: str | None) -> None:
        """Journal the event ``name`` with JSON ``text`` for the unfinished run (once per
        ``key``) and hand it to the run if it is here; ``RunNotFound`` or ``RunEnded``."""
        if check_name("an event's name", name).startswith(_RESERVED):
            raise ValueError(
                f"event names starting with {' or '.join(map(repr, _RESERVED))} are"
                f" reserved; got {name!r}"
            )
        await self._send(run_id, name, text, Expect(), key)

    async def _send(
        self, run_id: str, name: str, text: str, expect: Expect, key: str | None = None
    ) -> None:
        reading = self.reading
        reading.lifecycle.check_open()
        event = NewEvent(run_id, None, MESSAGE, name, text, reading.clock.now())
        seq = await reading.store.send(event, expect, key)
        if seq is not None:
            message = EventRecord(seq, run_id, None, MESSAGE, name, text, event.created_at)
            self.residency.deliver(message)


def _unanswered(events: list[EventRecord]) -> list[PendingWait]:
    """The run's unanswered ``wait_for_user`` questions; none in a corrupt journal (nobody
    can answer it: ``rt.check()`` lists it as corrupt)."""
    try:
        return list(map(PendingWait.from_event, RunJournal(events).pending_user_waits()))
    except CorruptJournal:
        return []
