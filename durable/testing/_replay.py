"""``replay(workflow, history)``: check current code against a recorded history.

The history document is replayed as ``rt.check()`` replays unfinished runs
(``durable/workflow/replay.py``): no step runs, and a call that differs from the
recorded one raises ``NonDeterminismError``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import durable
from durable._base.codec import encode, loads
from durable.journal.info import HISTORY_FORMAT, HISTORY_VERSION
from durable.journal.records import EventRecord
from durable.workflow.replay import divergence


def load_history(source: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A history document from a dict, or from a JSON file written by ``durable export``."""
    document = source if isinstance(source, dict) else loads(Path(source).read_bytes())
    if not isinstance(document, dict) or document.get("format") != HISTORY_FORMAT:
        raise durable.DurableError(
            f"not a durable history document (expected format {HISTORY_FORMAT!r});"
            " write one with `durable export RUN_ID` or `await rt.export(run_id)`"
        )
    if document.get("version") != HISTORY_VERSION:
        raise durable.DurableError(
            f"history format version {document.get('version')!r} is not supported by this"
            f" durable (it reads version {HISTORY_VERSION})"
        )
    return document


async def replay(
    workflow: durable.Workflow[Any, Any], history: dict[str, Any] | str | os.PathLike[str]
) -> None:
    """Run ``workflow``'s current code against ``history`` without executing any step.

    Raises ``NonDeterminismError`` (position, expected, received) when the
    code makes a different durable call than the history recorded, and
    ``DurableError`` before anything runs for a history of another workflow.
    """
    document = load_history(history)
    run = document["run"]
    recorded = run.get("workflow")
    if recorded != workflow.name:
        raise durable.DurableError(
            f"the history of run {run.get('run_id')!r} was recorded for workflow"
            f" {recorded!r}, not {workflow.name!r}; replay it with the workflow that"
            f" recorded it (@durable.workflow(name={recorded!r}))"
        )
    events = [_event(run["run_id"], event) for event in document["events"]]
    error = await divergence(
        workflow, str(run["run_id"]), encode(run["input"]), events, _seconds(run["updated_at"])
    )
    if error is not None:
        raise error


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
