"""Reading a run's streams from outside it: ``rt.read_stream``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from durable.journal.kinds import STREAM_CLOSED
from durable.journal.streams import StreamFold, StreamItem, fold_event
from durable.runtime.reading import Reading
from durable.workflow.stream import check_stream_key

LOOK_EVERY = 0.02
"""How often (seconds) a stream's reader looks for itself when the store's change feed
polls (SQLite): a token must reach a reader in another process within tens of
milliseconds, not at the feed's next poll."""


async def read_stream(
    reading: Reading, run_id: str, key: str, after: int | None, look_every: float | None
) -> AsyncIterator[StreamItem]:
    """The stream's items in order: those written already, then each one as it is
    committed, from just past the cursor ``after``; it ends when the stream is closed
    or the run has ended. ``look_every``: also look that often without news."""
    check_stream_key(key)
    start = check_cursor(after)
    fold = StreamFold(key)
    async with aclosing(reading.watch(run_id, "new", look_every=look_every)) as looks:
        async for news in looks:
            for event in news.events:
                if event.kind == STREAM_CLOSED and event.name == key and not event.superseded:
                    return
                for item in fold_event(fold, event):
                    if item.cursor > start:
                        yield item


def check_cursor(after: int | None) -> int:
    """``after`` as a cursor to resume past (0: from the start), or a clear error."""
    if after is None:
        return 0
    if isinstance(after, bool) or not isinstance(after, int):
        raise TypeError(
            f"read_stream(after=...) takes a StreamItem's cursor (an int), got"
            f" {type(after).__name__} {after!r}"
        )
    if after < 0:
        raise ValueError(f"read_stream(after=...) must be a cursor (0 or more), got {after}")
    return after
