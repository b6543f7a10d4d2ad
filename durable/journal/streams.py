"""A stream as its readers see it: the journal's events folded into ``StreamItem``s.

A value written inside a step belongs to that step's attempt. When the attempt
ends without completing (it failed and is retried or failed for good, or its
process died, seen when the next attempt starts; it was cancelled, seen by its
``stream.voided`` event or the run's cancel), or a re-run supersedes it (its
``stream.voided`` event), its values are void: the fold yields one
``"retract"`` item naming the position and attempt, in journal order, so
before any value of the next attempt. Every item's cursor is the seq of the
event it comes from (a retract's, the event that voided the attempt), so the
fold of a journal is the same wherever and whenever it is read, and
``after=cursor`` resumes just past an item. Only a run's cancel can void
several attempts at once (steps writing to one stream side by side): their
retracts share its cursor, and the stream ends there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from durable.journal.kinds import (
    CANCEL,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_STARTED,
    STREAM,
    STREAM_VALUE,
    STREAM_VOIDED,
    family,
)
from durable.journal.records import EventRecord
from durable.journal.run_journal import payload, stored


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

    Feed it every event of the run in journal order (``take``); it answers the items
    that event makes of the stream ``key`` (None: of every stream of the run). It
    remembers, per step position, the attempt whose values the stream holds: open (not
    ended yet) or kept (completed, void only if voided later).
    """

    __slots__ = ("_kept", "_open", "key")

    def __init__(self, key: str | None) -> None:
        self.key = key
        self._open: dict[int, int] = {}
        self._kept: dict[int, int] = {}

    def concerns(self, kind: str, name: str, position: int | None) -> bool:
        """Whether the event can make an item (only those need their payload read)."""
        if kind == STREAM_VALUE:
            return self.key is None or name == self.key
        if kind == STREAM_VOIDED:
            return bool(self._open or self._kept)
        if kind == CANCEL:
            return bool(self._open)
        if position is None or kind not in _STEP_ENDS:
            return False
        return position in self._open or (kind == STEP_STARTED and position in self._kept)

    def take(
        self, seq: int, kind: str, name: str, position: int | None, data: Any
    ) -> list[StreamItem]:
        """The items the event at ``seq`` makes of the stream (``data``: its payload as
        JSON data): a value, or the retracts of the attempts it voids."""
        if kind == STREAM_VALUE:
            return self._value(seq, name, position, data)
        if kind == STREAM_VOIDED:
            where = data if isinstance(data, dict) else {}
            return self._void(seq, where.get("position"), lambda held: held == where.get("attempt"))
        if kind == CANCEL:  # the run ended there: no attempt still open will complete
            return [item for at in sorted(self._open) for item in self._void(seq, at)]
        if position is None:
            return []
        if kind == STEP_COMPLETED:
            if position in self._open:
                self._kept[position] = self._open.pop(position)
            return []
        if kind == STEP_FAILED:
            return self._void(seq, position, kept=False)
        # A step's start says its attempt before it ended without completing (or, after
        # a re-run that journaled no void, that the completed one was superseded).
        attempt = data.get("attempt") if isinstance(data, dict) else None
        return self._void(
            seq, position, lambda held: not isinstance(attempt, int) or attempt > held
        )

    def standing(self, since: int) -> list[tuple[int, int]]:
        """(position, attempt) of each step attempt at ``since`` or later whose values
        stand (open or kept): what a re-run from ``since`` voids."""
        held = [*self._open.items(), *self._kept.items()]
        return sorted((position, attempt) for position, attempt in held if position >= since)

    def _value(self, seq: int, name: str, position: int | None, data: Any) -> list[StreamItem]:
        if (self.key is not None and name != self.key) or not isinstance(data, dict):
            return []
        step_position, attempt = data.get("position"), data.get("attempt")
        if position is not None or not isinstance(step_position, int):
            # Workflow code's value, or a step's from a version that did not record
            # where it was written: never retracted.
            return [StreamItem(seq, "value", data.get("value"), None, None)]
        if not isinstance(attempt, int):
            return [StreamItem(seq, "value", data.get("value"), None, None)]
        self._open[step_position] = attempt
        return [StreamItem(seq, "value", data.get("value"), step_position, attempt)]

    def _void(
        self,
        seq: int,
        position: Any,
        which: Callable[[int], bool] = lambda held: True,
        *,
        kept: bool = True,
    ) -> list[StreamItem]:
        """The retract of the attempt held at ``position`` (open, else kept unless not
        ``kept``) that ``which`` names, which is forgotten; none if none is held."""
        for held in (self._open, self._kept) if kept else (self._open,):
            attempt = held.get(position) if isinstance(position, int) else None
            if attempt is not None and which(attempt):
                del held[position]
                return [StreamItem(seq, "retract", None, position, attempt)]
        return []


_STEP_ENDS = frozenset({STEP_STARTED, STEP_COMPLETED, STEP_FAILED})
"""The step events that can end an attempt: a start says the attempt before it ended."""


def fold_event(fold: StreamFold, event: EventRecord) -> list[StreamItem]:
    """The items ``event`` makes of ``fold``'s stream, its payload read only if needed.

    A superseded event counts unless it is workflow code's stream call (its re-run
    writes it again): the step events a re-run superseded still say which attempts
    ended, so the fold of a journal is the same before and after a re-run.
    """
    if event.superseded and family(event.kind) == STREAM:
        return []
    if not fold.concerns(event.kind, event.name, event.position):
        return []
    data = payload(event) if event.kind == STREAM_VALUE else stored(event)
    return fold.take(event.seq, event.kind, event.name, event.position, data)


def voided(position: int, attempt: int) -> str:
    """The payload of the ``stream.voided`` event that voids that step attempt's values."""
    return f'{{"position":{position},"attempt":{attempt}}}'


def voided_by_rerun(events: Iterable[EventRecord], since: int) -> list[tuple[int, int]]:
    """(position, attempt) of each step attempt at ``since`` or later whose values (in
    any of the run's streams) stand in ``events``: what a re-run from ``since`` voids."""
    fold = StreamFold(None)
    for event in events:
        fold_event(fold, event)
    return fold.standing(since)


def kept_and_retracted(items: list[StreamItem]) -> tuple[list[Any], list[Any]]:
    """The values a stream keeps and those retracted, each in order."""
    void = {(item.position, item.attempt) for item in items if item.kind == "retract"}
    kept: list[Any] = []
    retracted: list[Any] = []
    for item in items:
        if item.kind == "value":
            (retracted if (item.position, item.attempt) in void else kept).append(item.value)
    return kept, retracted
