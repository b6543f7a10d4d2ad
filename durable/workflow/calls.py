"""``Calls``: a run's durable calls in the order its workflow makes them.

Each durable call takes the next position of its run when it is made; a journal
that holds a call of another kind or name there means the code is not the code
that ran. Every kind of durable call works over this and the run's ``RunHost``.
"""

from __future__ import annotations

from typing import Any

from durable.errors import CorruptJournal, DurableError, NonDeterminismError
from durable.journal.kinds import family, is_gate
from durable.journal.records import EventRecord
from durable.journal.run_journal import payload
from durable.workflow import current as _current
from durable.workflow.branches import call_began
from durable.workflow.host import RunHost


class Calls:
    """The positions of one run's durable calls, and the journal's answers at them."""

    def __init__(self, host: RunHost) -> None:
        self.host = host
        self.next_position = 0
        """The position the next durable call takes (so far taken: all before it)."""

    @property
    def replaying(self) -> bool:
        """The next call re-executes one the journal held when the run was loaded."""
        return self.next_position < self.host.journal.replay_end

    def take(self, kind: str, name: str) -> int:
        """The next position, for a durable call of family ``kind`` called ``name``; a
        journal that holds another call there fails the run (``NonDeterminismError``).
        Inside a step's body (a ``ctx`` it captured) the call is refused before anything
        is taken or journaled: ``DurableError``."""
        refuse_in_step(kind, name)
        host = self.host
        host.check_running()
        call_began()
        position = self.next_position
        self.next_position += 1
        events = host.journal.at(position)
        # A budget question shares the position of the step or child it held back.
        first = next((event for event in events if not is_gate(event.name)), None)
        expected = None
        if first is not None and (family(first.kind) != kind or first.name != name):
            expected = f"{family(first.kind)} {first.name!r}"
        elif first is None and events:
            held = self.read(events[0]).get("held", f"{kind} {name!r}")
            expected = None if held == f"{kind} {name!r}" else held
        if expected is not None:
            error = NonDeterminismError(position, expected, f"{kind} {name!r}")
            host.fatal(error)
            raise error
        return position

    def read(self, event: EventRecord) -> Any:
        """A journal entry's payload; an unreadable one fails the run, whatever the
        workflow catches, and leaves the journal as it is."""
        try:
            return payload(event)
        except CorruptJournal as error:
            self.host.fatal(error)
            raise


def refuse_in_step(kind: str, name: str) -> None:
    """``DurableError`` if a step's body is running here: a step's body is not replayed,
    so a durable call made in it could not be journaled at a position of its own."""
    scope = _current.step.get()
    if scope is None:
        return
    raise DurableError(
        f"a durable call ({kind} {name!r}) was made inside the body of step {scope.step!r}"
        f" (run {scope.run_id!r}, position {scope.position}) through a captured ctx;"
        " durable calls (steps, sleeps, waits, children, events, state, streams) belong"
        " to the workflow: make it in the workflow function, before or after the step"
        " (in a step, call functions directly: a @durable.step function is a plain call"
        " there)"
    )
