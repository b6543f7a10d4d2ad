"""Reading a run's streams from outside it: ``rt.read_stream``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from durable.journal.kinds import STREAM_CLOSED, STREAM_VALUE
from durable.journal.run_journal import payload
from durable.runtime.reading import Reading
from durable.workflow.stream import check_stream_key


async def read_stream(reading: Reading, run_id: str, key: str) -> AsyncIterator[Any]:
    """The stream's values in order: those written already, then each one as it is
    committed; it ends when the stream is closed or the run has ended."""
    check_stream_key(key)
    async with aclosing(reading.watch(run_id, "new")) as looks:
        async for news in looks:
            for event in news.events:
                if event.name != key or event.superseded:
                    continue
                if event.kind == STREAM_VALUE:
                    yield payload(event)["value"]
                elif event.kind == STREAM_CLOSED:
                    return
