"""Waiting for people and events: ``ctx.wait_for_user`` and ``ctx.wait_for_event``.

A wait journals its start (with its deadline), then takes the oldest message
of its name from the run's inbox, or parks the run until one arrives or the
deadline passes; the message it took, or the timeout, is journaled as its end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Coroutine, Sequence
from typing import Any, Literal, NoReturn

from durable._base.codec import encode
from durable._base.ids import check_name
from durable._base.numbers import seconds as finite_seconds
from durable.errors import WaitTimeout, error_from_record
from durable.journal.kinds import (
    USER_WAIT_PREFIX,
    WAIT,
    WAIT_COMPLETED,
    WAIT_STARTED,
    user_wait_id,
)
from durable.journal.records import EventRecord
from durable.workflow.branches import became_ready, journaling, took_message
from durable.workflow.calls import Calls

InputType = Literal["text", "approval", "choice"]
APPROVAL_OPTIONS = [{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}]


def wait_for_event(
    calls: Calls, name: str, timeout: float | dt.timedelta | None
) -> Coroutine[Any, Any, Any]:
    check_name("an event's name (ctx.wait_for_event)", name)
    seconds = _timeout(timeout)
    position = calls.take(WAIT, name)
    return _wait(calls, position, name, seconds, {})


def wait_for_user(
    calls: Calls,
    question: str,
    input_type: InputType,
    options: Sequence[dict[str, str] | str] | None,
    timeout: float | dt.timedelta | None,
) -> Coroutine[Any, Any, Any]:
    choices = _normalize_options(input_type, options)
    seconds = _timeout(timeout)
    position = calls.take(WAIT, user_wait_id(position=calls.next_position))
    details = {"question": question, "input_type": input_type, "options": choices}
    return _wait(calls, position, user_wait_id(position), seconds, details)


async def _wait(
    calls: Calls,
    position: int,
    name: str,
    seconds: float | None,
    details: dict[str, Any],
) -> Any:
    host = calls.host
    try:
        events = host.journal.at(position)
        if events and events[-1].kind == WAIT_COMPLETED:  # not given back since
            return await _replayed_wait(calls, position, events)
        if events:
            deadline = calls.read(events[0]).get("deadline")
        else:
            deadline = None if seconds is None else host.clock.now() + seconds
            started = encode({**details, "deadline": deadline, "timeout": seconds})
            await host.append(position, WAIT_STARTED, name, started)
        while True:
            message = host.journal.take_message(name)
            if message is not None:
                return await answered(calls, position, name, message)
            if deadline is not None and host.clock.now() >= deadline:
                await _timed_out(calls, position, name, deadline)
            await host.suspend("waiting", deadline, name)
    finally:
        host.journal.settle(position)


async def answered(calls: Calls, position: int, name: str, message: EventRecord) -> Any:
    """Journal that the wait took ``message``, and return its value."""
    # Read before it is copied: a corrupt message is blamed on its own row, and no new
    # row repeats it.
    value = calls.read(message)
    took_message(position, message)
    became_ready(message.created_at)
    completed = (
        f'{{"message":{message.seq},"sent_at":{encode(message.created_at)},'
        f'"value":{message.payload}}}'
    )
    with journaling():
        await calls.host.append(position, WAIT_COMPLETED, name, completed)
    return _wait_outcome({"value": value})


async def _timed_out(calls: Calls, position: int, name: str, deadline: float) -> NoReturn:
    """Journal that the wait's deadline passed, and raise ``WaitTimeout``."""
    became_ready(deadline)
    error = WaitTimeout(f"no {_describe_wait(name)} arrived before the deadline")
    timed_out = encode({"timed_out": True, "error": error.to_record()})
    with journaling():
        await calls.host.append(position, WAIT_COMPLETED, name, timed_out)
    raise error_from_record(error.to_record())


async def _replayed_wait(calls: Calls, position: int, events: list[EventRecord]) -> Any:
    """A wait whose end is journaled: its outcome, in its turn. In a race it tells
    when it became ready, and which message it took, before anything can cancel it."""
    done = calls.read(events[-1])
    journal = calls.host.journal
    message = journal.messages.get(done.get("message"))
    if message is not None:
        took_message(position, message)
        became_ready(message.created_at)
    elif done.get("timed_out"):
        became_ready(calls.read(events[0]).get("deadline") or events[-1].created_at)
    await journal.in_turn(position, events[-1])
    return _wait_outcome(done)


def _timeout(timeout: float | dt.timedelta | None) -> float | None:
    """A wait's timeout in seconds; 0 checks without waiting (DBOS's and Temporal's
    ``timeout=0``): what has already arrived is returned, else ``WaitTimeout`` at once."""
    raw = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout
    return None if raw is None else finite_seconds("a wait's timeout", raw, zero_ok=True)


def _wait_outcome(data: Any) -> Any:
    if data.get("timed_out"):
        raise error_from_record(data["error"])
    return data.get("value")


def _describe_wait(name: str) -> str:
    return "answer" if name.startswith(USER_WAIT_PREFIX) else f"event {name!r}"


def _normalize_options(
    input_type: str, options: Sequence[dict[str, str] | str] | None
) -> list[dict[str, str]] | None:
    if input_type not in ("text", "approval", "choice"):
        raise ValueError(f"input_type must be 'text', 'approval' or 'choice', got {input_type!r}")
    if options is None:
        if input_type == "choice":
            raise ValueError("wait_for_user(input_type='choice') needs options=[...]")
        return APPROVAL_OPTIONS if input_type == "approval" else None
    normalized = []
    for option in options:
        if isinstance(option, str):
            normalized.append({"id": option, "label": option})
        elif isinstance(option, dict) and isinstance(option.get("id"), str):
            normalized.append({"id": option["id"], "label": str(option.get("label", option["id"]))})
        else:
            raise ValueError(f"each option needs a string 'id', got {option!r}")
    return normalized
