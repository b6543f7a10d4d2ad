"""Numbers users pass in: seconds must be finite and mostly positive, counts >= 1.

``float("nan")`` passes every ``< 0`` and ``<= 0`` check and then means "never"
or "forever", so each such argument is checked here, with one message.
"""

from __future__ import annotations

import datetime as dt
import math


def count(name: str, value: int | None, *, none_ok: bool = False) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is an int >= 1 (or None if allowed)."""
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def seconds(name: str, value: float, *, zero_ok: bool = False) -> float:
    """``value`` as float, or ``ValueError`` naming ``name`` unless finite and > 0 (>= 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        needed = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {needed}, got {value!r}")
    return number


def timestamp(name: str, moment: dt.datetime) -> float:
    """An aware datetime as POSIX seconds; ``ValueError`` naming ``name`` for a naive one."""
    if not isinstance(moment, dt.datetime):
        raise TypeError(f"{name} must be a datetime, got {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{name} must be an aware datetime (with a time zone), got {moment!r};"
            " for example datetime.now(timezone.utc)"
        )
    return moment.timestamp()


_LAST = dt.datetime.max.replace(tzinfo=dt.UTC)
_FIRST = dt.datetime.min.replace(tzinfo=dt.UTC)


def utc_moment(seconds: float) -> dt.datetime:
    """POSIX seconds as an aware UTC datetime. A stored time no datetime holds (the wake
    time of a sleep of 1e300 seconds, a moment past year 9999) reads as the last (or
    first) datetime there is, so that reading a run never fails on it."""
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return _LAST if seconds > 0 else _FIRST
