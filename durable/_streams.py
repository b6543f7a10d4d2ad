"""Streams: values a run publishes as it goes (an LLM's tokens, progress), read live.

A stream is a run's events of kind ``stream.value`` and ``stream.closed``
under the stream's key. Written by the workflow (``ctx.write_stream``) they
are journaled calls at a position, so a replay writes nothing again; written
inside a step (``durable.write_stream``, or each value an async-generator step
yields) they are events without a position, tagged with the attempt that wrote
them, and a replay does not run the step again. ``rt.read_stream`` reads the
committed events of the run after the last one it yielded, each time the
change feed says something may have changed (PostgreSQL NOTIFYs stream writes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from . import _current
from ._codec import encode
from ._ids import check_name
from ._journal import STREAM_CLOSED, STREAM_VALUE, payload
from ._store.base import TERMINAL
from .errors import DurableError

if TYPE_CHECKING:
    from ._runtime import Runtime


async def write_stream(key: str, value: Any) -> None:
    """Append ``value`` to the stream ``key`` of the current run: inside a step, tagged
    with the step's attempt; in workflow code, as ``ctx.write_stream``."""
    _check_key(key)
    scope = _current.step.get()
    if scope is not None and scope.host is not None:
        host = scope.host
        text = encode(value, host.max_value_bytes)
        data = f'{{"value":{text},"step":{encode(scope.step)},"attempt":{scope.attempt}}}'
        await host.emit(STREAM_VALUE, key, data)
        return
    ctx = _current.context.get()
    if ctx is not None:
        await ctx.write_stream(key, value)
        return
    raise DurableError(
        "durable.write_stream() was called outside a workflow and its steps; call it in"
        " an async step or workflow, or use ctx.write_stream in workflow code"
    )


async def read_stream(rt: Runtime, run_id: str, key: str) -> AsyncIterator[Any]:
    """The stream's values in order: those written already, then each one as it is
    committed; it ends when the stream is closed or the run has ended."""
    _check_key(key)
    after = 0
    while True:
        changed = rt.inbox.next_change()
        record = await rt._record(run_id)  # before the events: an end seen implies them all
        events = await rt.store.events_after(run_id, after)
        for event in events:
            after = event.seq
            if event.name != key or event.superseded:
                continue
            if event.kind == STREAM_VALUE:
                yield payload(event)["value"]
            elif event.kind == STREAM_CLOSED:
                changed.cancel()
                return
        if record.status in TERMINAL:
            changed.cancel()
            return
        with rt.awaiting(changed.done):  # a virtual clock skips meanwhile
            await changed


def _check_key(key: str) -> None:
    check_name("a stream's key", key)
