"""The kinds of journal events: the one place in Python where a kind is spelled.

A kind is ``<family>.<what happened>``; the family is the kind of durable call
the event belongs to, and replay compares it with the call the code makes at
that position. Events without a position (a message, a cancel, a run marker)
have kinds of their own. The stores' SQL files spell some of these too, as
they cannot import them.
"""

from __future__ import annotations

# Families: the kinds of durable call, as ``family(kind)`` names them.
STEP = "step"
SLEEP = "sleep"
WAIT = "wait"
VALUE_CALL = "value"
CHILD = "child"
EVENT = "event"
STATE = "state"
STREAM = "stream"
PATCH = "patch"
FIRST = "first"

STEP_STARTED = "step.started"
STEP_COMPLETED = "step.completed"
STEP_FAILED = "step.failed"
SLEEP_STARTED = "sleep.started"
WAIT_STARTED = "wait.started"
WAIT_COMPLETED = "wait.completed"
WAIT_RETURNED = "wait.returned"
"""A wait that lost a ``ctx.first`` race gave back the message it took: the wait is
open again and the message is for the run's next wait of its name."""
VALUE = "value.recorded"
CHILD_STARTED = "child.started"
CHILD_COMPLETED = "child.completed"
"""The parent saw its child end: the child's status and output or error, copied."""
EVENT_SENT = "event.sent"
STATE_SET = "state.set"
STATE_DELETED = "state.deleted"
STATE_CLEARED = "state.cleared"
STREAM_VALUE = "stream.value"
STREAM_CLOSED = "stream.closed"
STREAM_VOIDED = "stream.voided"
"""The stream values of one step attempt (``position``, ``attempt`` in its payload) are
void: the attempt was cancelled (``ctx.first``'s loser), or a re-run superseded it. An
event without a position, as a step's stream values are."""
PATCHED = "patch.applied"
BUDGET_CHARGED = "budget.charged"
"""Spend a step recorded (``durable.charge``): no position; tagged with the step's
position and attempt."""
BUDGET_RAISED = "budget.raised"
"""The caps of the budget a run holds, raised by a person (``rt.raise_budget``)."""
FIRST_WON = "first.won"
"""Which of the calls raced by ``ctx.first`` finished first."""

MESSAGE = "message"
"""The kind of an event sent to a run (an answer, an event, a child's end)."""
CANCEL = "run.cancel"
"""The kind of the event a cancel leaves in the run's journal."""
RERUN = "run.rerun"
"""``rt.rerun_from`` superseded the journal from a position on."""
RECOVERED = "run.recovered"
"""A runtime took the run over from an owner that died (or from its own last life)."""
RESUMED = "run.resumed"
"""A person resumed the failed run (``rt.resume``): recoveries are counted anew."""

PUBLISHED = (f"{STATE}.", f"{STREAM}.")
"""The kinds (by prefix) of the events a run publishes for others to read: its state
and its streams. A store that notifies other connections of writes notifies these too."""

USER_WAIT_PREFIX = "user:"
"""The name, before its position, of a ``wait_for_user`` wait (and of its answer)."""
BUDGET_GATE_PREFIX = "budget:"
"""The name, before its position, of the question a run asks when its budget is reached:
a wait journaled at the position of the step or child it holds back."""
QUESTIONS = (USER_WAIT_PREFIX, BUDGET_GATE_PREFIX)
"""Name prefixes of the waits a person answers (``rt.respond``, ``rt.pending_waits``)."""
CHILD_ENDED = "child:"
"""The name, before the child's run id, of the message a child's end leaves its parent."""


def family(kind: str) -> str:
    """The kind of durable call an event belongs to: step, sleep, wait, value, ..."""
    return kind.partition(".")[0]


def user_wait_id(position: int) -> str:
    """The name of the ``wait_for_user`` wait at ``position``."""
    return f"{USER_WAIT_PREFIX}{position}"


def budget_gate_id(position: int, asked_before: int = 0) -> str:
    """The name of the budget question that holds back the call at ``position``; one
    asked there again after a re-run superseded ``asked_before`` of them has a name of
    its own (``budget:3.2``), so no answer to a superseded question answers it."""
    suffix = f".{asked_before + 1}" if asked_before else ""
    return f"{BUDGET_GATE_PREFIX}{position}{suffix}"


def is_gate(event_name: str) -> bool:
    """Whether an event of this name belongs to a budget question, not to the call it
    holds back (both share a position)."""
    return event_name.startswith(BUDGET_GATE_PREFIX)


def child_message(child_run_id: str) -> str:
    """The name of the message a child's end leaves in its parent's journal."""
    return f"{CHILD_ENDED}{child_run_id}"
