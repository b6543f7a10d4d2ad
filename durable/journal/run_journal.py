"""What a run's journal says: events by position, the inbox, and step attempt summaries.

Pure functions over ``EventRecord`` lists, shared by the context (replay),
the runtime (pending waits, check) and the history export.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from durable._base.codec import encode, loads
from durable.errors import CorruptJournal, NonDeterminismError
from durable.journal.kinds import (
    BUDGET_CHARGED,
    CHILD_COMPLETED,
    CHILD_STARTED,
    EVENT_SENT,
    FIRST_WON,
    MESSAGE,
    PATCHED,
    QUESTIONS,
    RECOVERED,
    RESUMED,
    SLEEP_STARTED,
    STATE_CLEARED,
    STATE_DELETED,
    STATE_SET,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_STARTED,
    STREAM_CLOSED,
    STREAM_VALUE,
    VALUE,
    WAIT_COMPLETED,
    WAIT_RETURNED,
    WAIT_STARTED,
    family,
    is_gate,
)
from durable.journal.records import EventRecord

_HAND_OVER_ITERATIONS = 3
"""Loop iterations a replayed call lets pass between the return of the call journaled
before it and its own: enough for a task's end to reach ``asyncio.wait`` and for the
workflow to resume there."""


def payload(event: EventRecord) -> Any:
    """The event's payload as JSON data of the shape its kind requires, or
    ``CorruptJournal`` naming run and position."""
    data = stored(event)
    problem = _shape_problem(event, data)
    if problem is not None:
        raise corrupt(event, f"{problem}; correct that event's payload")
    return data


def stored(event: EventRecord) -> Any:
    """The event's payload as JSON data, whatever its shape (for showing it as it is), or
    ``CorruptJournal`` when it is not JSON."""
    try:
        return loads(event.payload)
    except ValueError as exc:
        raise corrupt(event, f"{exc}; correct that event's payload (it must be JSON)") from None


def corrupt(event: EventRecord, problem: str) -> CorruptJournal:
    """The error for an event that cannot be read: ``problem`` says what and the fix."""
    return CorruptJournal(
        f"the journal of run {event.run_id!r} is unreadable at position {event.position}"
        f" (event {event.seq}, {event.kind}): {problem} or restore it from a backup, then"
        " rt.resume() the run; the run was stopped and its journal left as it is"
    )


def state_of(events: list[EventRecord]) -> dict[str, Any]:
    """A run's ``ctx.state`` as its journal leaves it (superseded changes left out)."""
    state: dict[str, Any] = {}
    for event in events:
        if event.superseded or event.position is None:
            continue
        if event.kind == STATE_SET:
            state[event.name] = payload(event)["value"]
        elif event.kind == STATE_DELETED:
            state.pop(event.name, None)
        elif event.kind == STATE_CLEARED:
            state.clear()
    return state


def _progress(event: EventRecord) -> bool:
    """The run got further: a durable call finished or parked (a step that only
    started, and died with its process, is no progress)."""
    return event.position is not None and not event.superseded and event.kind != STEP_STARTED


class RunJournal:
    """One run's events, indexed for replay."""

    def __init__(self, events: list[EventRecord]) -> None:
        self.live: dict[int, list[EventRecord]] = {}
        self.superseded: dict[int, list[EventRecord]] = {}
        self.inbox: list[EventRecord] = []
        self._messages_seen: set[int] = set()
        consumed = _consumed(events)
        self.messages: dict[int, EventRecord] = {}
        """Every message sent to the run, by seq (a wait that gives one back needs it)."""
        self.recoveries_in_a_row = 0
        """Recoveries since the run last made progress (or was resumed by hand)."""
        for event in events:
            if event.kind == RECOVERED:
                self.recoveries_in_a_row += 1
            elif event.kind == RESUMED or _progress(event):
                self.recoveries_in_a_row = 0
            if event.kind == MESSAGE:
                self._messages_seen.add(event.seq)
                self.messages[event.seq] = event
                if event.seq not in consumed:
                    self.inbox.append(event)
            elif event.position is not None:
                target = self.superseded if event.superseded else self.live
                target.setdefault(event.position, []).append(event)
        self._turns: dict[int, int] = {}  # replayed calls in flight: position -> end's seq
        self._turn_order: list[tuple[int, int]] = []  # a heap of (end's seq, position)
        self._waiting: dict[int, asyncio.Future[None]] = {}
        for events_at in self.live.values():
            _check_started(events_at[0])
        self.replay_end = max(self.live, default=-1) + 1
        """The first position the journal had nothing for when the run was loaded:
        calls before it are replays of calls made in an earlier life."""

    def parked(self, now: float) -> tuple[float | None, str | None] | None:
        """Where the run would park at once if replayed now: (deadline, message name).

        Only when the journal says so without running the workflow: every
        durable call but the last has finished, and the last is a sleep not
        yet due or a wait with no answer in the inbox. Otherwise None: the run
        must be replayed to know (an interrupted step, a retry, a gather).
        """
        if not self.live:
            return None
        last = max(self.live)
        # A gap (a call never awaited, or one that died before its first write) is for
        # replay to fill: the journal alone does not say where the run parks.
        if any(p not in self.live or not _finished(self.live[p], now) for p in range(last)):
            return None
        events = self.live[last]
        first = events[0]
        if len(events) != 1:
            return None
        if first.kind == SLEEP_STARTED:
            wake_at = float(payload(first)["wake_at"])
            return (wake_at, None) if wake_at > now else None
        if first.kind == WAIT_STARTED and not self.has_message(first.name):
            deadline = payload(first).get("deadline")
            if deadline is None:
                return (None, first.name)
            return (float(deadline), first.name) if float(deadline) > now else None
        return None

    def at(self, position: int) -> list[EventRecord]:
        return self.live.get(position, [])

    def all_at(self, position: int) -> list[EventRecord]:
        """Superseded and live events at ``position``, in journal order."""
        return self.superseded.get(position, []) + self.live.get(position, [])

    def record(self, event: EventRecord) -> None:
        """Add an event this process has just written."""
        if event.position is not None:
            self.live.setdefault(event.position, []).append(event)

    def settle(self, position: int) -> None:
        """The durable call at ``position`` has returned or raised for good: the running
        workflow never reads its events again (a replay reads them from the store), so
        they are let go, and a long run holds only the events of calls in progress."""
        self.live.pop(position, None)
        self.superseded.pop(position, None)
        if self._turns.pop(position, None) is None:
            return
        if not self._turns:
            self._turn_order.clear()
            return
        waiting = self._waiting.get(self._next_turn())
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def in_turn(self, position: int, end: EventRecord) -> None:
        """Return when the replayed call at ``position``, which ended with ``end``, may
        hand back its result: after every call in flight whose end was journaled before
        it. So code that reacts to completion order (``asyncio.wait``, ``as_completed``,
        a lock around steps) takes the same path on replay as when it ran."""
        self._turns[position] = end.seq
        heapq.heappush(self._turn_order, (end.seq, position))
        try:
            await asyncio.sleep(0)  # calls started in the same moment take their turns too
            while self._next_turn() != position:
                self._waiting[position] = asyncio.get_running_loop().create_future()
                await self._waiting[position]
                # What the call before set going (asyncio.wait's wake-up, a lock handed
                # on) runs first, as it did while this call was still running.
                for _ in range(_HAND_OVER_ITERATIONS):
                    await asyncio.sleep(0)
        except BaseException:
            self.settle(position)
            raise
        finally:
            self._waiting.pop(position, None)

    def _next_turn(self) -> int:
        """The position of the replayed call in flight whose end was journaled first."""
        order = self._turn_order
        while self._turns.get(order[0][1]) != order[0][0]:  # settled since it was queued
            heapq.heappop(order)
        return order[0][1]

    def deliver(self, message: EventRecord) -> bool:
        """Add a message sent to the run; False if it was already known."""
        if message.seq in self._messages_seen:
            return False
        self._messages_seen.add(message.seq)
        self.inbox.append(message)
        self.inbox.sort(key=lambda event: event.seq)
        return True

    def has_message(self, name: str) -> bool:
        return any(message.name == name for message in self.inbox)

    def give_back(self, message: EventRecord) -> None:
        """Put a message a wait took back into the inbox, in its place."""
        self.inbox.append(message)
        self.inbox.sort(key=lambda event: event.seq)

    def take_message(self, name: str) -> EventRecord | None:
        """Remove and return the oldest unconsumed message called ``name``."""
        for index, message in enumerate(self.inbox):
            if message.name == name:
                return self.inbox.pop(index)
        return None

    def pending_user_waits(self) -> list[EventRecord]:
        """Questions for a person (``wait_for_user``, a budget reached) that have no
        answer yet, oldest first."""
        waits = []
        for events in self.live.values():
            started = events[0]
            if (
                started.kind == WAIT_STARTED
                and started.name.startswith(QUESTIONS)
                and not any(event.kind == WAIT_COMPLETED for event in events)
                and not self.has_message(started.name)
            ):
                waits.append(started)
        return sorted(waits, key=lambda event: event.seq)


_STARTS = {
    STEP_COMPLETED: STEP_STARTED,
    STEP_FAILED: STEP_STARTED,
    WAIT_COMPLETED: WAIT_STARTED,
    CHILD_COMPLETED: CHILD_STARTED,
}
"""Kinds that end a durable call, and the kind each is journaled after, at its position."""


def _check_started(first: EventRecord) -> None:
    """The first live event at a position must begin its call: an end with nothing
    before it means an entry is missing."""
    start = _STARTS.get(first.kind)
    if start is not None:
        raise corrupt(
            first,
            f"an entry is missing before it: a {first.kind} follows the {start} of its"
            " call, and there is none; put the missing event back",
        )


_RETURNED = frozenset(
    {
        STEP_COMPLETED,
        WAIT_COMPLETED,
        VALUE,
        CHILD_COMPLETED,
        EVENT_SENT,
        STATE_SET,
        STATE_DELETED,
        STATE_CLEARED,
        PATCHED,
        FIRST_WON,
        STREAM_VALUE,
        STREAM_CLOSED,
    }
)
"""Kinds of the events that end a durable call (what it returned is in them)."""


def _consumed(events: list[EventRecord]) -> set[int | None]:
    """The seqs of the messages a wait or a child's end has consumed, in journal order: a
    message given back by a wait that lost a race (``wait.returned``) is free again until
    a later wait consumes it."""
    consumed: set[int | None] = set()
    for event in events:
        if event.superseded:
            continue
        if event.kind in (WAIT_COMPLETED, CHILD_COMPLETED):
            consumed.add(payload(event).get("message"))
        elif event.kind == WAIT_RETURNED:
            consumed.discard(payload(event)["message"])
    return consumed


def _finished(events: list[EventRecord], now: float) -> bool:
    """The durable call at one position has returned, and replay returns at once.

    Reads the payload it would return, so a corrupt journal is found now, as replay
    would find it, and not when the run wakes.
    """
    for event in events:
        if is_gate(event.name):  # a budget question answered: the call it held back is next
            continue
        if event.kind in _RETURNED:
            payload(event)
            return True
        if event.kind == STEP_FAILED and payload(event).get("final") is not None:
            return True
        if event.kind == SLEEP_STARTED:
            return float(payload(event)["wake_at"]) <= now
    return False


@dataclass(frozen=True)
class Attempts:
    """What the journal says about the attempts of the step at one position."""

    gate_count: int
    completion_count: int
    failure_count: int
    prior_status: str
    prior_error: dict[str, Any] | None
    prior_output: str | None
    first_attempt_at: float | None
    last_attempt_at: float | None


NO_ATTEMPTS = Attempts(0, 0, 0, "none", None, None, None, None)


def attempts(events: list[EventRecord]) -> Attempts:
    """Summarize step events (superseded ones included) in journal order."""
    if not events:
        return NO_ATTEMPTS
    gates = completions = failures = 0
    status = "none"
    error: dict[str, Any] | None = None
    output: str | None = None
    first: float | None = None
    last: float | None = None
    for event in events:
        if event.kind == STEP_STARTED:
            gates += 1
            status = "gated_not_completed"
            first = event.created_at if first is None else first
            last = event.created_at
        elif event.kind == STEP_COMPLETED:
            completions += 1
            status = "completed"
            output = encode(payload(event).get("result"))
        elif event.kind == STEP_FAILED:
            if not event.superseded:
                failures += 1
            status = "failed"
            error = payload(event).get("error")
    return Attempts(gates, completions, failures, status, error, output, first, last)


def completed_payload(result_json: str) -> str:
    return f'{{"result":{result_json}}}'


def unreplayed(journal: RunJournal, used: int) -> NonDeterminismError | None:
    """The error for a workflow that returned having used ``used`` positions, before
    reaching all its journaled ones."""
    leftover = sorted(position for position in journal.live if position >= used)
    if not leftover:
        return None
    first = journal.live[leftover[0]][0]
    return NonDeterminismError(
        leftover[0], f"{family(first.kind)} {first.name!r}", "the workflow returning"
    )


_Check = tuple[Callable[[Any], bool], str]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_ANY: _Check = (lambda value: True, "")
_NUMBER: _Check = (_number, "a number")
_NUMBER_OR_NULL: _Check = (lambda value: value is None or _number(value), "a number or null")
_INTEGER: _Check = (_integer, "an integer")
_INTEGER_OR_NULL: _Check = (lambda value: value is None or _integer(value), "an integer or null")
_TEXT: _Check = (lambda value: isinstance(value, str), "a string")
_OBJECT: _Check = (lambda value: isinstance(value, dict), "an object")
_OBJECT_OR_NULL: _Check = (
    lambda value: value is None or isinstance(value, dict),
    "an object or null",
)

_SHAPES: dict[str, dict[str, tuple[bool, _Check]]] = {
    STEP_STARTED: {},
    STEP_COMPLETED: {"result": (True, _ANY)},
    STEP_FAILED: {
        "final": (False, _OBJECT_OR_NULL),
        "error": (False, _OBJECT_OR_NULL),
        "retry_at": (False, _NUMBER_OR_NULL),
    },
    SLEEP_STARTED: {"wake_at": (True, _NUMBER)},
    WAIT_STARTED: {"deadline": (False, _NUMBER_OR_NULL)},
    WAIT_COMPLETED: {
        "message": (False, _INTEGER_OR_NULL),
        "sent_at": (False, _NUMBER),
        "error": (False, _OBJECT),
    },
    WAIT_RETURNED: {"message": (True, _INTEGER)},
    VALUE: {"value": (True, _ANY)},
    CHILD_STARTED: {"run_id": (True, _TEXT)},
    CHILD_COMPLETED: {
        "status": (True, _TEXT),
        "message": (False, _INTEGER_OR_NULL),
        "error": (False, _OBJECT_OR_NULL),
    },
    EVENT_SENT: {"error": (False, _OBJECT)},
    STATE_SET: {"value": (True, _ANY)},
    STATE_DELETED: {},
    STATE_CLEARED: {},
    STREAM_VALUE: {"value": (True, _ANY)},
    STREAM_CLOSED: {},
    PATCHED: {},
    FIRST_WON: {"index": (True, _INTEGER)},
    BUDGET_CHARGED: {
        "position": (True, _INTEGER),
        "usd": (False, _NUMBER),
        "tokens": (False, _INTEGER),
    },
}
"""What each kind's payload must hold to be read: key -> (required, (check, what it is)).
Kinds not here (messages, run markers) may hold any JSON."""


def _shape_problem(event: EventRecord, data: Any) -> str | None:
    """What the payload lacks for its kind, or None when replay can read it as it is."""
    shape = _SHAPES.get(event.kind)
    if shape is None:
        return None
    if not isinstance(data, dict):
        return f"it holds {type(data).__name__} {_brief(data)} where a {event.kind} holds an object"
    for key, (required, (check, what)) in shape.items():
        if key not in data:
            if required:
                return f"it has no {key!r}"
        elif not check(data[key]):
            return f"its {key!r} is {_brief(data[key])} where it must be {what}"
    if event.kind == STEP_FAILED and data.get("final") is None and data.get("retry_at") is None:
        return "it has neither a 'final' error nor a 'retry_at' time"
    if event.kind == WAIT_COMPLETED and "value" not in data and "error" not in data:
        return "it has neither a 'value' nor an 'error'"
    if event.kind == WAIT_STARTED and event.name.startswith(QUESTIONS):
        for key in ("question", "input_type"):
            if not isinstance(data.get(key), str):
                return f"its {key!r} is {_brief(data.get(key))} where it must be a string"
    return None


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
