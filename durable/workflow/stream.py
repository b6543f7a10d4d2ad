"""Streams: values a run publishes as it goes (an LLM's tokens, progress), read live.

A stream is a run's events of kind ``stream.value`` and ``stream.closed``
under the stream's key. Written by the workflow (``ctx.write_stream``) they
are journaled calls at a position, so a replay writes nothing again; written
inside a step (``durable.write_stream``, or each value an async-generator step
yields) they are events without a position, tagged with the step's position and
the attempt that wrote them, and a replay does not run the step again. A step's
values are gathered for a few milliseconds and written together (tokens come
faster than commits), and always before the step's end is journaled. When the
attempt is cancelled (``ctx.first``'s loser), a ``stream.voided`` event says that
those already written are void.
``rt.read_stream`` folds the events into ``StreamItem``s (``journal/streams.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from durable._base.codec import encode
from durable._base.ids import check_name
from durable.errors import DurableError
from durable.journal.kinds import STREAM, STREAM_CLOSED, STREAM_VALUE
from durable.workflow import current as _current
from durable.workflow.calls import Calls

if TYPE_CHECKING:
    from durable.workflow.host import RunHost
    from durable.workflow.step_info import StepScope

WINDOW = 0.025
"""Seconds a step's first unwritten value waits for others to share its commit."""
MOST_AT_ONCE = 256
"""Values (or, see ``MOST_BYTES``, bytes) after which they are written at once, and the
step waits for that write: a step that writes faster than commits does not pile up."""
MOST_BYTES = 1 << 20


async def write_stream(key: str, value: Any) -> None:
    """Append ``value`` to the stream ``key`` of the current run: inside a step, tagged
    with the step's position and attempt (committed within a few milliseconds, and
    before the step's end); in workflow code, as ``ctx.write_stream``."""
    check_stream_key(key)
    scope = _current.step.get()
    if scope is not None and scope.host is not None:
        text = encode(value, scope.host.max_value_bytes)
        if scope.streams is None:
            scope.streams = StepStreams(scope.host, scope)
        await scope.streams.write(key, text)
        return
    ctx = _current.context.get()
    if ctx is not None:
        await ctx.write_stream(key, value)
        return
    raise DurableError(
        "durable.write_stream() was called outside a workflow and its steps; call it in"
        " an async step or workflow, or use ctx.write_stream in workflow code"
    )


class StepStreams:
    """The stream values one step attempt wrote that are not handed to the journal yet.

    They go in one write ``WINDOW`` seconds after the first of them, or at once when
    there are ``MOST_AT_ONCE`` of them, and when the attempt ends (``end``), so the
    step's end is journaled after them. Once the attempt has ended, a write is refused.
    """

    __slots__ = (
        "_bytes",
        "_handed",
        "_host",
        "_pending",
        "_tag",
        "_timer",
        "_where",
        "ended",
        "name",
    )

    def __init__(self, host: RunHost, scope: StepScope) -> None:
        self._host = host
        self.name = f"step {scope.step!r} (position {scope.position}) attempt {scope.attempt}"
        where = f'"position":{scope.position},"attempt":{scope.attempt}'
        self._tag = f',"step":{encode(scope.step)},{where}}}'
        self._where = (scope.position, scope.attempt)
        self._handed = False  # whether any value went to the journal
        self._pending: list[tuple[str, str, float]] = []
        self._bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self.ended = False

    async def write(self, key: str, text: str) -> None:
        if self.ended:
            raise DurableError(
                f"durable.write_stream({key!r}, ...) was called after {self.name} ended"
                " (from a task that outlived it?); write a step's values before it returns"
            )
        host = self._host
        host.check_running()
        self._pending.append((key, f'{{"value":{text}{self._tag}', host.clock.now()))
        self._bytes += len(text)
        if len(self._pending) >= MOST_AT_ONCE or self._bytes >= MOST_BYTES:
            written = self.flush()
            if written is not None:
                await asyncio.wait([written])
            host.check_running()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(WINDOW, self._flush_later)

    def flush(self) -> asyncio.Future[Any] | None:
        """Hand the values to the journal now, in one write (None: there were none)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return None
        values, self._pending, self._bytes = self._pending, [], 0
        self._handed = True
        return self._host.emit(values)

    def _flush_later(self) -> None:
        self._timer = None
        with contextlib.suppress(asyncio.CancelledError):  # the run stopped here: void
            self.flush()

    def end(self, *, keep: bool) -> None:
        """The attempt ended: write what it left (``keep``) or drop it (it was
        cancelled, so its values are void, and the journal says so of those it holds
        already), and refuse any later write."""
        self.ended = True
        if keep:
            self.flush()
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending, self._bytes = [], 0
        if self._handed:
            self._host.void(*self._where)


def end_streams(scope: StepScope, *, keep: bool) -> None:
    """The attempt of ``scope`` ended: see ``StepStreams.end``."""
    if scope.streams is not None:
        scope.streams.end(keep=keep)


async def write(calls: Calls, key: str, value: Any) -> None:
    """``ctx.write_stream``: a journaled call at the run's next position."""
    text = encode(value, calls.host.max_value_bytes)
    await _journal(calls, STREAM_VALUE, key, f'{{"value":{text}}}')


async def close(calls: Calls, key: str) -> None:
    """``ctx.close_stream``: a journaled call at the run's next position."""
    await _journal(calls, STREAM_CLOSED, key, "{}")


async def _journal(calls: Calls, kind: str, key: str, text: str) -> None:
    check_stream_key(key)
    position = calls.take(STREAM, key)
    journal = calls.host.journal
    events = journal.at(position)
    journal.settle(position)
    if not events:
        await calls.host.append(position, kind, key, text)


def check_stream_key(key: str) -> None:
    check_name("a stream's key", key)
