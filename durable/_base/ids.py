"""Run ids and names: new run ids (UUID version 7 text), and the rule every run id
and name given to durable follows."""

from __future__ import annotations

import os
import re
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


NAME_LIMIT = 255
"""The most characters a run id or a name (of a workflow, event, stream, queue...) has."""

_UNFIT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters (C0, DEL, C1) and UTF-16 surrogates, which in a Python string are
always lone: no database driver stores them, and a NUL ends a C string."""


def check_name(what: str, value: object) -> str:
    """``value`` if it is a fit run id or name: a non-empty string of at most 255
    characters without control characters or lone surrogates. Otherwise ``TypeError``
    or ``ValueError`` naming ``what``, the rule and what is wrong, raised where the
    value enters (never a database driver's error later)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__} {value!r:.60}")
    if value and len(value) <= NAME_LIMIT:
        unfit = _UNFIT.search(value)
        if unfit is None:
            return value
        problem = f"it has U+{ord(unfit.group()):04X} at index {unfit.start()}"
    else:
        problem = "it is empty" if not value else f"it has {len(value)} characters"
    raise ValueError(
        f"{what} must be a non-empty string of at most {NAME_LIMIT} characters without"
        f" control characters or lone surrogates; {problem}: {value!r:.60}"
    )
