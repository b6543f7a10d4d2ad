"""Runs that work together: child workflows, events sent between runs, and calls that
run concurrently (``parallel``, ``gather``, ``first``).

A child's start and end are journaled in the parent at the position of the
call: ``child.started`` once the child's row exists, ``child.completed`` (its
status and output or error, copied) once the parent has seen it end. The
store leaves the parent a message when the child ends, in the child's last
transaction, so the parent wakes wherever it runs; the parent then reads the
child's row. An event sent by a workflow carries the key "sender run id and
position", so sending again after a crash delivers nothing twice.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from durable._base.codec import convert, encode, loads, return_hint
from durable.errors import (
    DurableError,
    RunNotFound,
    WorkflowCancelled,
    WorkflowFailed,
    error_from_record,
)
from durable.journal.kinds import (
    CHILD_COMPLETED,
    CHILD_STARTED,
    EVENT_SENT,
    FIRST_WON,
    WAIT_RETURNED,
    child_message,
)
from durable.journal.records import TERMINAL, RunEnded
from durable.workflow.race import start_branch

if TYPE_CHECKING:
    from durable.workflow.context import WorkflowContext
    from durable.workflow.decorators import Workflow

R = TypeVar("R")


def child_run_id(parent_run_id: str, position: int) -> str:
    """The run id of the child started at ``position``: the same on every replay."""
    return f"{parent_run_id}.{position}"


class ChildHandle(Generic[R]):
    """A child run started by ``ctx.start_child``: ``run_id`` and ``await result()``."""

    def __init__(
        self, ctx: WorkflowContext, position: int, run_id: str, wf: Workflow[Any, R]
    ) -> None:
        self._ctx = ctx
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
        host = self._ctx._host
        name = child_message(self.run_id)
        try:
            while True:
                for event in host.journal.at(self._position):
                    if event.kind == CHILD_COMPLETED:
                        data: dict[str, Any] = self._ctx._read(event)
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
                if record.parent_run_id != self._ctx.run_id:
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


async def start_child(
    ctx: WorkflowContext,
    position: int,
    wf: Workflow[Any, R],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    run_id: str | None,
) -> ChildHandle[R]:
    host = ctx._host
    events = host.journal.at(position)
    if events:
        started = ctx._read(events[0])
        return ChildHandle(ctx, position, str(started["run_id"]), wf)
    child_id = run_id or child_run_id(ctx.run_id, position)
    # The child's row first: if the parent dies before journaling the start, its replay
    # makes the same call, which finds the same child (the id is the idempotency key).
    await host.start_child(wf, args, kwargs, child_id)
    started_text = encode({"run_id": child_id, "workflow": wf.name, "version": wf.version})
    await host.append(position, CHILD_STARTED, wf.name, started_text)
    return ChildHandle(ctx, position, child_id, wf)


async def call_child(
    ctx: WorkflowContext,
    position: int,
    wf: Workflow[Any, R],
    args: Sequence[Any],
    kwargs: dict[str, Any],
) -> R:
    """``await other(...)`` inside a workflow: start the child and await its result."""
    handle = await start_child(ctx, position, wf, args, kwargs, None)
    return await handle.result()


async def send_event(
    ctx: WorkflowContext, position: int, run_id: str, name: str, text: str
) -> None:
    host = ctx._host
    events = host.journal.at(position)
    host.journal.settle(position)
    if events:
        sent = ctx._read(events[0])
        if "error" in sent:
            raise error_from_record(sent["error"])
        return
    try:
        await host.send(run_id, name, text, key=f"{ctx.run_id}@{position}")
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


async def parallel(awaitables: list[Awaitable[Any]]) -> list[Any]:
    """Every call to its end, then the values in order or the first error in order."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.wait(tasks)
    finally:
        for task in tasks:
            task.cancel()
    for task in tasks:
        error = task.exception()
        if error is not None:
            raise error
    return [task.result() for task in tasks]


async def first(
    ctx: WorkflowContext, position: int, awaitables: list[Awaitable[Any]]
) -> tuple[int, Any]:
    host = ctx._host
    events = host.journal.at(position)
    host.journal.settle(position)
    if events:
        winner = int(ctx._read(events[0])["index"])
        for index, awaitable in enumerate(awaitables):
            if index != winner:
                _discard(awaitable)
        return winner, await awaitables[winner]
    branches = [start_branch(awaitable) for awaitable in awaitables]
    tasks = [task for task, _ in branches]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # Branches still journaling the end of a call that became ready (after downtime,
        # a wait that found its event while a timer fell due) finish that write: then
        # the earliest ready of those that finished wins.
        await asyncio.gather(*(branch.written.wait() for _, branch in branches))
        finished = [index for index, task in enumerate(tasks) if task.done()]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    now = host.clock.now()
    ready_at = [now if branch.ready_at is None else branch.ready_at for _, branch in branches]
    winner = min(finished, key=lambda index: (ready_at[index], index))
    for index, (_, branch) in enumerate(branches):
        took = branch.took
        if index != winner and took is not None:  # a losing wait consumes nothing
            wait_position, message = took
            given_back = f'{{"message":{message.seq}}}'
            await host.append(wait_position, WAIT_RETURNED, message.name, given_back)
            host.journal.give_back(message)
    host.append_nowait(position, FIRST_WON, "first", f'{{"index":{winner}}}')
    return winner, tasks[winner].result()


def _discard(awaitable: Awaitable[Any]) -> None:
    """Let go of a call that lost the race in the journal, without running it."""
    if inspect.iscoroutine(awaitable):
        awaitable.close()
    elif isinstance(awaitable, asyncio.Future):
        awaitable.cancel()
