"""Runs that work together: child workflows (``ctx.start_child``, awaiting a workflow)
and events sent between runs (``ctx.send_event``).

A child's start and end are journaled in the parent at the position of the
call: ``child.started`` once the child's row exists, ``child.completed`` (its
status and output or error, copied) once the parent has seen it end. The
store leaves the parent a message when the child ends, in the child's last
transaction, so the parent wakes wherever it runs; the parent then reads the
child's row. An event sent by a workflow carries the key "sender run id and
position", so sending again after a crash delivers nothing twice.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any, Generic, TypeVar

from durable._base.codec import convert, encode, loads, return_hint
from durable._base.ids import check_name
from durable.errors import (
    DurableError,
    RunNotFound,
    WorkflowCancelled,
    WorkflowFailed,
    error_from_record,
)
from durable.journal.kinds import (
    CHILD,
    CHILD_COMPLETED,
    CHILD_STARTED,
    EVENT,
    EVENT_SENT,
    child_message,
)
from durable.journal.records import TERMINAL, RunEnded
from durable.workflow.budget import gate
from durable.workflow.calls import Calls
from durable.workflow.decorators import Workflow

R = TypeVar("R")


def child_run_id(parent_run_id: str, position: int) -> str:
    """The run id of the child started at ``position``: the same on every replay."""
    return f"{parent_run_id}.{position}"


class ChildHandle(Generic[R]):
    """A child run started by ``ctx.start_child``: ``run_id`` and ``await result()``."""

    def __init__(self, calls: Calls, position: int, run_id: str, wf: Workflow[Any, R]) -> None:
        self._calls = calls
        self._position = position
        self.run_id = run_id
        self._workflow = wf
        self._outcome: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<ChildHandle {self.run_id!r} of {self._workflow.name!r}>"

    async def result(self) -> R:
        """The child's result, once it ends: ``WorkflowFailed`` if it failed,
        ``WorkflowCancelled`` if it was cancelled (the same on every replay)."""
        if self._outcome is None:
            self._outcome = await self._await_end()
        return self._read(self._outcome)

    async def _await_end(self) -> dict[str, Any]:
        host = self._calls.host
        name = child_message(self.run_id)
        try:
            while True:
                for event in host.journal.at(self._position):
                    if event.kind == CHILD_COMPLETED:
                        data: dict[str, Any] = self._calls.read(event)
                        return data
                record = await host.read_run(self.run_id)
                if record is None:
                    raise RunNotFound(self.run_id)
                if record.status in TERMINAL:
                    message = host.journal.take_message(name)
                    seq = "null" if message is None else str(message.seq)
                    text = (
                        f'{{"message":{seq},"run_id":{encode(self.run_id)},'
                        f'"status":"{record.status}","output":{record.output or "null"},'
                        f'"error":{record.error or "null"}}}'
                    )
                    await host.append(self._position, CHILD_COMPLETED, self._workflow.name, text)
                    ended: dict[str, Any] = loads(text)
                    return ended
                if record.parent_run_id != self._calls.host.run_id:
                    # Attached, not its own child: the store tells only its parent.
                    host.watch_end(self.run_id, name)
                await host.suspend("waiting", None, name)
        finally:
            host.journal.settle(self._position)

    def _read(self, outcome: dict[str, Any]) -> R:
        status = outcome["status"]
        if status == "cancelled":
            raise WorkflowCancelled(self.run_id)
        if status == "failed":
            raise WorkflowFailed(self.run_id, outcome.get("error") or {})
        value: R = convert(outcome.get("output"), return_hint(self._workflow.fn))
        return value


def start_child(
    calls: Calls,
    wf: Workflow[Any, R],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    run_id: str | None,
) -> Coroutine[Any, Any, ChildHandle[R]]:
    if run_id is not None:
        check_name("a child's run_id", run_id)
    if run_id == calls.host.run_id:
        raise ValueError(
            f"a child's run_id names the run that starts it ({run_id!r}), which would wait"
            " for its own end; give the child another run_id"
        )
    return _start_child(calls, calls.take(CHILD, wf.name), wf, args, kwargs, run_id)


def call_child(
    calls: Calls, wf: Workflow[Any, R], args: Sequence[Any], kwargs: dict[str, Any]
) -> Coroutine[Any, Any, R]:
    """``await other(...)`` inside a workflow: start the child and await its result."""
    return _call_child(calls, calls.take(CHILD, wf.name), wf, args, kwargs)


async def _call_child(
    calls: Calls,
    position: int,
    wf: Workflow[Any, R],
    args: Sequence[Any],
    kwargs: dict[str, Any],
) -> R:
    handle = await _start_child(calls, position, wf, args, kwargs, None)
    return await handle.result()


async def _start_child(
    calls: Calls,
    position: int,
    wf: Workflow[Any, R],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    run_id: str | None,
) -> ChildHandle[R]:
    host = calls.host
    await gate(calls, position, f"{CHILD} {wf.name!r}")
    events = [event for event in host.journal.at(position) if event.kind == CHILD_STARTED]
    if events:
        started = calls.read(events[0])
        return ChildHandle(calls, position, str(started["run_id"]), wf)
    child_id = run_id or child_run_id(host.run_id, position)
    # The child's row first: if the parent dies before journaling the start, its replay
    # makes the same call, which finds the same child (the id is the idempotency key).
    await host.start_child(wf, args, kwargs, child_id)
    started_text = encode({"run_id": child_id, "workflow": wf.name, "version": wf.version})
    await host.append(position, CHILD_STARTED, wf.name, started_text)
    return ChildHandle(calls, position, child_id, wf)


def send_event(calls: Calls, run_id: str, name: str, payload: Any) -> Coroutine[Any, Any, None]:
    check_name("the run_id of ctx.send_event", run_id)
    check_name("an event's name (ctx.send_event)", name)
    text = encode(payload, calls.host.max_value_bytes)
    return _send_event(calls, calls.take(EVENT, name), run_id, name, text)


async def _send_event(calls: Calls, position: int, run_id: str, name: str, text: str) -> None:
    host = calls.host
    events = host.journal.at(position)
    host.journal.settle(position)
    if events:
        sent = calls.read(events[0])
        if "error" in sent:
            raise error_from_record(sent["error"])
        return
    try:
        await host.send(run_id, name, text, key=f"{host.run_id}@{position}")
    except (RunNotFound, RunEnded) as refused:
        error = (
            refused
            if isinstance(refused, RunNotFound)
            else DurableError(
                f"run {run_id!r} has ended {refused.status}; the event {name!r} was not sent"
            )
        )
        record = error.to_record() | {"code": refused.code}
        await host.append(position, EVENT_SENT, name, encode({"run_id": run_id, "error": record}))
        raise error_from_record(record) from None
    host.append_nowait(position, EVENT_SENT, name, encode({"run_id": run_id}))
