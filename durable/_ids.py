"""Run ids: UUID version 7 text, time-ordered, from a pool of random digits."""

from __future__ import annotations

import os
import time


class _HexPool:
    """Random hex digits for run ids, drawn from ``os.urandom`` 4 KB at a time (it is a
    system call) and handed out in order."""

    __slots__ = ("at", "digits")

    def __init__(self) -> None:
        self.digits = ""
        self.at = 0

    def clear(self) -> None:
        self.digits, self.at = "", 0


_pool = _HexPool()
# A forked child must not hand out its parent's remaining random digits as its own.
os.register_at_fork(after_in_child=_pool.clear)
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""The RFC 9562 variant (binary 10) over two random bits."""


def new_run_id() -> str:
    """A UUID version 7 (RFC 9562): time-ordered, so new runs' rows and index entries
    land at the end of their B-trees instead of on random pages. Built as text: the
    48-bit millisecond time, the version, 74 random bits and the variant."""
    pool, at = _pool, _pool.at
    if at + 19 > len(pool.digits):
        pool.digits, at = os.urandom(4096).hex(), 0
    pool.at = at + 19
    r = pool.digits[at : at + 19]
    t = f"{time.time_ns() // 1_000_000:012x}"
    return f"{t[:8]}-{t[8:]}-7{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:]}"
