"""``replay(workflow, history)``: check current code against a recorded history.

The workflow runs on a host that answers every durable call from the
history and never executes a step: where the code asks for something the
history does not have (a step that never finished, a wait never answered,
a call past the end), the replay stops there, successfully. A call that
differs from the recorded one raises ``NonDeterminismError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import _current
from .._clock import Clock, VirtualClock
from .._codec import encode, loads
from .._context import WorkflowContext
from .._info import HISTORY_FORMAT, HISTORY_VERSION
from .._journal import RunJournal
from .._run import decode_arguments, unreplayed
from .._store.base import EventRecord
from .._workflow import Workflow
from ..errors import CorruptJournal, DurableError, NonDeterminismError


class _EndOfHistory(BaseException):
    """The code asked for something the history does not have."""


def load_history(source: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A history document from a dict, or from a JSON file written by ``durable export``."""
    document = source if isinstance(source, dict) else loads(Path(source).read_bytes())
    if not isinstance(document, dict) or document.get("format") != HISTORY_FORMAT:
        raise DurableError(
            f"not a durable history document (expected format {HISTORY_FORMAT!r});"
            " write one with `durable export RUN_ID` or `await rt.export(run_id)`"
        )
    if document.get("version") != HISTORY_VERSION:
        raise DurableError(
            f"history format version {document.get('version')!r} is not supported by this"
            f" durable (it reads version {HISTORY_VERSION})"
        )
    return document


class _ReplayHost:
    """A ``RunHost`` that answers from a recorded history and can write nothing."""

    def __init__(self, run: dict[str, Any], events: list[EventRecord]) -> None:
        self.run_id = str(run["run_id"])
        self.workflow_name = str(run["workflow"])
        self.journal = RunJournal(events)
        latest = max([_seconds(run["updated_at"]), *(e.created_at for e in events)])
        self.clock: Clock = VirtualClock(start=latest, auto_skip=False)
        self.max_value_bytes: int | None = None
        self._fatal: NonDeterminismError | CorruptJournal | None = None

    async def append(self, position: int, kind: str, name: str, payload: str) -> EventRecord:
        raise _EndOfHistory

    def append_nowait(self, position: int, kind: str, name: str, payload: str) -> None:
        raise _EndOfHistory

    async def suspend(self, status: str, deadline: float | None, message: str | None) -> None:
        raise _EndOfHistory

    def check_running(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def fatal(self, error: NonDeterminismError | CorruptJournal) -> None:
        self._fatal = error

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        yield


async def replay(
    workflow: Workflow[Any, Any], history: dict[str, Any] | str | os.PathLike[str]
) -> None:
    """Run ``workflow``'s current code against ``history`` without executing any step.

    Raises ``NonDeterminismError`` (position, expected, received) when the
    code makes a different durable call than the history recorded.
    """
    document = load_history(history)
    run = document["run"]
    events = [_event(run["run_id"], event) for event in document["events"]]
    host = _ReplayHost(run, events)
    encoded_input = encode(run["input"])

    async def drive() -> None:
        ctx = WorkflowContext(host)
        _current.context.set(ctx)
        args, kwargs = decode_arguments(workflow, encoded_input)
        try:
            await workflow.fn(ctx, *args, **kwargs)
        except _EndOfHistory:
            return
        except Exception:
            if host._fatal is None:
                return  # the workflow's own error, as it was recorded
        if host._fatal is not None:
            raise host._fatal
        leftover = unreplayed(host.journal, ctx)
        if leftover is not None:
            raise leftover

    await asyncio.create_task(drive())


def _seconds(moment: str) -> float:
    return dt.datetime.fromisoformat(moment).timestamp()


def _event(run_id: str, data: dict[str, Any]) -> EventRecord:
    return EventRecord(
        seq=int(data["seq"]),
        run_id=run_id,
        position=data["position"],
        kind=str(data["kind"]),
        name=str(data["name"]),
        payload=encode(data["payload"]),
        created_at=_seconds(data["created_at"]),
        superseded=bool(data.get("superseded", False)),
    )
