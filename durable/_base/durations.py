"""``timedelta`` as JSON: an ISO 8601 duration, as pydantic writes one.

``P1DT2H3M4.5S``, with a leading ``-`` for a negative duration: exact to the
microsecond, readable, and what pydantic itself writes and reads, so a
duration looks the same in the journal whether it stood alone or inside a model.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal


def duration_text(value: dt.timedelta) -> str:
    """``value`` as an ISO 8601 duration (days, hours, minutes, seconds; never years or
    months, whose length varies)."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours}H" if hours else ""
    clock += f"{minutes}M" if minutes else ""
    if seconds or value.microseconds:
        clock += f"{seconds}.{value.microseconds:06d}".rstrip("0").rstrip(".") + "S"
    text = f"{value.days}D" if value.days else ""
    if clock:
        text += f"T{clock}"
    return f"{sign}P{text or 'T0S'}"


_DURATION = re.compile(
    r"(?P<sign>[-+])?P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?"
    r"(?:(?P<days>\d+)D)?(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d{1,6})?)S)?)?"
)

_DAYS_IN = {"years": 365, "months": 30, "weeks": 7, "days": 1}
"""Days in each calendar part of a duration, as pydantic counts them."""


def parse_duration(value: object) -> dt.timedelta:
    """An ISO 8601 duration (what ``duration_text`` and pydantic write), or a number of
    seconds; ``ValueError`` naming the form for anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None or not any(part is not None for part in match.groups()[1:]):
        raise ValueError(
            f"{value!r:.60} is not a duration: expected an ISO 8601 duration such as"
            " 'PT1.5S' or 'P1DT2H', or a number of seconds"
        )
    days = sum(int(match.group(part) or 0) * count for part, count in _DAYS_IN.items())
    seconds = Decimal((match.group("seconds") or "0").replace(",", "."))
    micro = int(seconds * 1_000_000)
    duration = dt.timedelta(
        days=days,
        hours=int(match.group("hours") or 0),
        minutes=int(match.group("minutes") or 0),
        microseconds=micro,
    )
    return -duration if match.group("sign") == "-" else duration
