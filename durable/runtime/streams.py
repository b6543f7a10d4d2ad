"""Reading a run's streams from outside it: ``rt.read_stream``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from durable.journal.records import TERMINAL
from durable.journal.run_journal import STREAM_CLOSED, STREAM_VALUE, payload
from durable.workflow.stream import _check_key

if TYPE_CHECKING:
    from durable.runtime.runtime import Runtime


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
