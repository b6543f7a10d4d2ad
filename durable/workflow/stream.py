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

from typing import Any

from durable._base.codec import encode
from durable._base.ids import check_name
from durable.errors import DurableError
from durable.journal.kinds import STREAM, STREAM_CLOSED, STREAM_VALUE
from durable.workflow import current as _current
from durable.workflow.calls import Calls


async def write_stream(key: str, value: Any) -> None:
    """Append ``value`` to the stream ``key`` of the current run: inside a step, tagged
    with the step's attempt; in workflow code, as ``ctx.write_stream``."""
    check_stream_key(key)
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
