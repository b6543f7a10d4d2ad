"""Budgets in a workflow: ``durable.charge`` inside a step, and the gate before each
step and child.

A charge is journaled when it is made (an event without a position, tagged with
the step's position and attempt), so the spend of an attempt that then crashed
still counts and a replay, which does not run the step, adds none. Before a
step or child starts for the first time, the run asks its host whether a budget
over it is reached; if so it journals a question at that call's position
(``input_type="budget"``) and parks until a person raises the budget (the call
goes on) or answers ``"stop"`` (``BudgetExceeded`` at the call). A replay takes
the journaled answer, so it takes the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

from durable._base.codec import encode
from durable.errors import BudgetExceeded, DurableError
from durable.journal.budget import charge_payload, check_charge
from durable.journal.kinds import WAIT_COMPLETED, WAIT_STARTED, budget_gate_id, is_gate
from durable.workflow import current as _current
from durable.workflow.calls import Calls
from durable.workflow.waits import answered

STOP = "stop"
GATE_OPTIONS = [{"id": STOP, "label": "Stop"}]


def charge(*, usd: float | Decimal = 0.0, tokens: int = 0) -> None:
    """Record spend of the running step against its run's budget: journaled at once
    (tagged with the step's position and attempt), so it counts even if the attempt
    then crashes, and never twice. Not awaited; callable from a sync step's thread."""
    check_charge(usd, tokens)
    scope = _current.step.get()
    if scope is None or scope.host is None:
        raise DurableError(
            "durable.charge() was called outside a step; call it inside the function a"
            " step runs (ctx.step(...) or a @durable.step function awaited in a workflow),"
            " where the spend happens"
        )
    if usd == 0 and tokens == 0:
        return
    record = charge_payload(float(usd), tokens, scope.position, scope.attempt)
    scope.host.budget.charge(scope.step, encode(record))


async def gate(calls: Calls, position: int, call: str) -> None:
    """Let the step or child at ``position`` start, or hold it back while a budget over
    the run is reached: a journaled answer is taken again, a new check is made only for
    a call that never began (``call``: ``step 'name'`` or ``child 'workflow'``, kept
    with the question so that replay knows what it held). ``BudgetExceeded`` when the
    answer was ``"stop"``."""
    host = calls.host
    events = host.journal.at(position)
    if any(not is_gate(event.name) for event in events):
        return  # the call began: it was let through before
    if not events:
        held = await host.budget.over_budget()
        if held is None:
            return  # the common case: nothing more is done or written
        await _ask(calls, position, _fresh_name(calls, position), _question(held, call))
        return
    name = events[0].name
    if events[-1].kind == WAIT_COMPLETED:
        answer = calls.read(events[-1])
        if answer.get("withdrawn"):
            await _never(calls, name)  # cancelled while held, as replay will cancel it
        _outcome(calls, calls.read(events[0]), answer.get("value"))
        return
    await _answer(calls, position, name, calls.read(events[0]))


async def _ask(calls: Calls, position: int, name: str, question: dict[str, Any]) -> None:
    """Journal the question and wait for its answer; one raised while it was being
    asked lets the call go on at once."""
    host = calls.host
    try:
        await host.append(position, WAIT_STARTED, name, encode(question))
        reached = await host.budget.over_budget()
    except asyncio.CancelledError:
        _withdraw(calls, position, name)  # the question was queued before any await
        raise
    if reached is None:
        await host.append(position, WAIT_COMPLETED, name, _RAISED_MEANWHILE)
        return
    await _answer(calls, position, name, question)


async def _answer(calls: Calls, position: int, name: str, question: dict[str, Any]) -> None:
    """Wait for the answer to the open question ``name``: raised (go on) or "stop"."""
    host = calls.host
    open_question = True
    try:
        while True:
            message = host.journal.take_message(name)
            if message is not None:
                open_question = False
                _outcome(calls, question, await answered(calls, position, name, message))
                return
            await host.suspend("waiting", None, name)
    except asyncio.CancelledError:
        if open_question:
            _withdraw(calls, position, name)
        raise


def _withdraw(calls: Calls, position: int, name: str) -> None:
    """The held call was cancelled (it lost a race): nobody is to answer for it. A copy
    of the run stopped from outside writes nothing (the host refuses)."""
    with contextlib.suppress(asyncio.CancelledError):
        calls.host.append_nowait(position, WAIT_COMPLETED, name, _WITHDRAWN)


_WITHDRAWN = '{"value":null,"withdrawn":true}'
_RAISED_MEANWHILE = '{"value":{"raised":"while the question was asked"}}'


def _fresh_name(calls: Calls, position: int) -> str:
    superseded = calls.host.journal.all_at(position)
    asked = sum(1 for event in superseded if event.kind == WAIT_STARTED and is_gate(event.name))
    return budget_gate_id(position, asked)


def _question(held: dict[str, Any], call: str) -> dict[str, Any]:
    return {
        "held": call,
        "question": held.pop("question"),
        "input_type": "budget",
        "options": GATE_OPTIONS,
        "deadline": None,
        "budget": held,
    }


async def _never(calls: Calls, name: str) -> None:
    """Wait for ever: a withdrawn question's call is cancelled by what cancelled it the
    first time (the race it lost), never answered."""
    while True:
        await calls.host.suspend("waiting", None, name)


def _outcome(calls: Calls, question: dict[str, Any], value: Any) -> None:
    """A raise lets the call go on; ``"stop"`` raises ``BudgetExceeded`` (the same on
    every replay)."""
    if value == STOP:
        raise BudgetExceeded(
            f"{question.get('question', 'the budget was reached')}; a person answered"
            f" 'stop' (run {calls.host.run_id!r})"
        )
