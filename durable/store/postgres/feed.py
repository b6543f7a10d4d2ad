"""The PostgreSQL change feed: a connection that LISTENs on the journal's channel.

Every transaction that others must hear of sends a NOTIFY in it (``finish_batch``),
so a woken reader finds what it was woken for. A runtime's own commits are known
to it already: their NOTIFYs carry its id and are not news. A slow poll runs
beside LISTEN, and a lost listening connection is made again on the next wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from durable._base.aio import wait_set, within

log = logging.getLogger("durable")

FALLBACK_POLL = 2.0
"""Seconds between looks at the journal without a notification (and while LISTEN is down)."""


class ChangeFeed:
    """Hears the NOTIFYs on ``channel`` that another runtime than ``me`` sent."""

    def __init__(
        self, connect: Callable[[], Awaitable[asyncpg.Connection]], channel: str, me: str
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._me = me
        self._listener: asyncpg.Connection | None = None
        self._changed = asyncio.Event()
        self._closing = False

    async def listen(self) -> None:
        conn = await self._connect()
        await conn.add_listener(self._channel, self._heard)
        conn.add_termination_listener(self._lost)
        self._listener = conn

    async def close(self) -> None:
        self._closing = True
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await within(self._listener.close(), 2)
            self._listener = None

    def _heard(self, conn: object, pid: int, channel: str, payload: str) -> None:
        if payload != self._me:  # our own commits are known here already
            self._changed.set()

    def _lost(self, conn: object) -> None:
        self._listener = None
        self._changed.set()  # what was sent while it was down is read again

    async def wait_for_change(self, timeout: float) -> bool:
        """True when something may have changed, False after ``timeout`` in silence."""
        if self._listener is None and not self._closing:
            try:
                await self.listen()
            except Exception as exc:
                log.warning("durable: cannot LISTEN on PostgreSQL (%s); polling", exc)
                await asyncio.sleep(min(timeout, FALLBACK_POLL))
                return True
            return True
        # A slow poll beside LISTEN: should a notification ever be missed, what it
        # announced is found within FALLBACK_POLL seconds, never waited for forever.
        if not await wait_set(self._changed, min(timeout, FALLBACK_POLL)):
            return timeout > FALLBACK_POLL
        self._changed.clear()
        return True
