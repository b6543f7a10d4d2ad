"""What a branch of ``ctx.first`` tells its race: when it became ready, and the message
it took. After downtime several branches are ready at once (an event sent while no
runtime ran, a timer that fell due); the one that became ready first wins, and a
losing wait gives back the message it took, so the next wait for it gets it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
from collections.abc import Awaitable, Iterator
from typing import Any

from durable.journal.records import EventRecord


@dataclasses.dataclass
class Branch:
    ready_at: float | None = None
    """When the branch's last durable call became ready to return (None: not yet)."""
    took: tuple[int, EventRecord] | None = None
    """The position of the wait that took a message, and the message."""
    writing: int = 0
    """Durable calls of the branch that became ready and are journaling their end."""
    written: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set while ``writing`` is 0."""

    def __post_init__(self) -> None:
        self.written.set()


_BRANCH: contextvars.ContextVar[Branch | None] = contextvars.ContextVar(
    "durable_race_branch", default=None
)


def start_branch(awaitable: Awaitable[Any]) -> tuple[asyncio.Future[Any], Branch]:
    """Run ``awaitable`` as a branch of a race: its durable calls report to the Branch."""
    branch = Branch()
    token = _BRANCH.set(branch)
    try:
        return asyncio.ensure_future(awaitable), branch  # the task copies this context
    finally:
        _BRANCH.reset(token)


def became_ready(at: float) -> None:
    """A durable call is about to return what became ready at ``at``."""
    branch = _BRANCH.get()
    if branch is not None:
        branch.ready_at = at


def call_began() -> None:
    """A durable call began: the branch is not ready until it returns."""
    branch = _BRANCH.get()
    if branch is not None:
        branch.ready_at = None


@contextlib.contextmanager
def journaling() -> Iterator[None]:
    """Around the write that ends a call that became ready: a race waits for it."""
    branch = _BRANCH.get()
    if branch is None:
        yield
        return
    branch.writing += 1
    branch.written.clear()
    try:
        yield
    finally:
        branch.writing -= 1
        if branch.writing == 0:
            branch.written.set()


def took_message(position: int, message: EventRecord) -> None:
    """A wait at ``position`` took ``message`` from the run's inbox."""
    branch = _BRANCH.get()
    if branch is not None:
        branch.took = (position, message)
