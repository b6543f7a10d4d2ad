"""A stream as its readers see it: the journal's events folded into ``StreamItem``s.

A value written inside a step belongs to that step's attempt. When the attempt
ends without completing (it failed and is retried or failed for good, or its
process died, seen when the next attempt starts), its values are void: the
fold yields one ``"retract"`` item naming the position and attempt, in journal
order, so before any value of the next attempt. Every item's cursor is the seq
of the event it comes from (a retract's, the event that voided the attempt),
so the fold of a journal is the same wherever and whenever it is read, and
``after=cursor`` resumes just past an item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from durable.journal.kinds import STEP_COMPLETED, STEP_FAILED, STEP_STARTED, STREAM_VALUE


@dataclass(frozen=True, slots=True)
class StreamItem:
    """One item of a run's stream, as ``rt.read_stream`` yields it.

    ``kind`` is ``"value"`` (``value`` was written) or ``"retract"`` (the values
    written by the attempt ``attempt`` of the step at ``position`` are void: that
    attempt ended without completing; ``value`` is None). ``position`` and
    ``attempt`` are those of the step that wrote the value, None for workflow code.
    ``cursor`` orders the items of a run; ``read_stream(..., after=cursor)``
    resumes just past this one.
    """

    cursor: int
    kind: Literal["value", "retract"]
    value: Any
    position: int | None
    attempt: int | None

    def to_dict(self) -> dict[str, Any]:
        """The item as JSON data (what ``durable serve`` sends as an event's ``data``)."""
        return {
            "cursor": self.cursor,
            "kind": self.kind,
            "value": self.value,
            "position": self.position,
            "attempt": self.attempt,
        }


class StreamFold:
    """Folds one stream's events (and its run's step events) into ``StreamItem``s.

    Feed it every event of the run in journal order (``take``); it answers the item
    that event makes of the stream ``key``, if any. It remembers, per step position,
    the attempt whose values the stream holds and that has not completed.
    """

    __slots__ = ("_open", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self._open: dict[int, int] = {}

    def concerns(self, kind: str, name: str, position: int | None) -> bool:
        """Whether the event can make an item (only those need their payload read)."""
        if kind == STREAM_VALUE:
            return name == self.key
        return position is not None and position in self._open and kind in _STEP_ENDS

    def take(
        self, seq: int, kind: str, name: str, position: int | None, data: Any
    ) -> StreamItem | None:
        """The item the event at ``seq`` makes of the stream (``data``: its payload as
        JSON data), or None. Superseded events are the caller's to leave out."""
        if kind == STREAM_VALUE:
            return self._value(seq, name, position, data)
        if position is None or position not in self._open:
            return None
        if kind == STEP_COMPLETED:
            del self._open[position]
        elif kind == STEP_FAILED or (kind == STEP_STARTED and self._newer(position, data)):
            attempt = self._open.pop(position)
            return StreamItem(seq, "retract", None, position, attempt)
        return None

    def _value(self, seq: int, name: str, position: int | None, data: Any) -> StreamItem | None:
        if name != self.key or not isinstance(data, dict):
            return None
        step_position, attempt = data.get("position"), data.get("attempt")
        if position is not None or not isinstance(step_position, int):
            # Workflow code's value, or a step's from a version that did not record
            # where it was written: never retracted.
            return StreamItem(seq, "value", data.get("value"), None, None)
        if not isinstance(attempt, int):
            return StreamItem(seq, "value", data.get("value"), None, None)
        self._open[step_position] = attempt
        return StreamItem(seq, "value", data.get("value"), step_position, attempt)

    def _newer(self, position: int, data: Any) -> bool:
        attempt = data.get("attempt") if isinstance(data, dict) else None
        return not isinstance(attempt, int) or attempt > self._open[position]


_STEP_ENDS = frozenset({STEP_STARTED, STEP_COMPLETED, STEP_FAILED})
"""The step events that can end an attempt: a start says the attempt before it ended."""


def kept_and_retracted(items: list[StreamItem]) -> tuple[list[Any], list[Any]]:
    """The values a stream keeps and those retracted, each in order."""
    void = {(item.position, item.attempt) for item in items if item.kind == "retract"}
    kept: list[Any] = []
    retracted: list[Any] = []
    for item in items:
        if item.kind == "value":
            (retracted if (item.position, item.attempt) in void else kept).append(item.value)
    return kept, retracted
