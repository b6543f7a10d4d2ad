"""Calls that run concurrently: ``ctx.parallel`` and ``ctx.gather`` (every call to its
end) and ``ctx.first`` (the first to finish wins, the others are cancelled).

Which call won a race is journaled, so a replay takes the same branch even when
all of them are in the journal by then. After downtime several branches are ready
at once; the one that became ready first wins (``branches``), and a losing wait
gives back the message it took.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Coroutine
from typing import Any

from durable.journal.kinds import FIRST, FIRST_WON, WAIT_RETURNED
from durable.workflow.branches import start_branch
from durable.workflow.calls import Calls


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


def first(calls: Calls, awaitables: list[Awaitable[Any]]) -> Coroutine[Any, Any, tuple[int, Any]]:
    if not awaitables:
        raise ValueError("ctx.first needs at least one awaitable")
    return _first(calls, calls.take(FIRST, "first"), awaitables)


async def _first(calls: Calls, position: int, awaitables: list[Awaitable[Any]]) -> tuple[int, Any]:
    host = calls.host
    events = host.journal.at(position)
    host.journal.settle(position)
    if events:
        winner = int(calls.read(events[0])["index"])
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
