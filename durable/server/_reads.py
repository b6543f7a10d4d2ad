"""The API's reads for the web view: runs searched and paged with a cursor, a run's
steps with their attempts, the registered workflows, queues and schedules."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

import durable
from durable.journal.kinds import STEP_COMPLETED, STEP_FAILED, STEP_STARTED
from durable.server._http import JSON, BadRequest
from durable.workflow.decorators import registered_spec, registry_keys
from durable.workflow.step_info import idempotency_key

MAX_LIMIT = 1000
"""The most runs one ``GET /api/runs`` lists (page on with the ``Next-Cursor`` header)."""


def encode_cursor(run_id: str) -> str:
    """The opaque cursor of the page after ``run_id``'s (its keyset is looked up)."""
    return base64.urlsafe_b64encode(run_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        run_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        run_id = ""
    if not run_id:
        raise BadRequest(
            f"cursor {cursor[:40]!r} is not one this server gave: pass the Next-Cursor"
            " header of the page before, as it was"
        )
    return run_id


def _limit(request: Request) -> int:
    text = request.query_params.get("limit", "100")
    if not (text.isascii() and text.isdigit() and len(text) < 20 and 1 <= int(text) <= MAX_LIMIT):
        raise BadRequest(
            f"limit must be a whole number from 1 to {MAX_LIMIT}, got {text[:40]!r};"
            " page on with cursor=<the Next-Cursor header of the page before>"
        )
    return int(text)


def _moment(request: Request, name: str) -> dt.datetime | None:
    text = request.query_params.get(name) or None
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadRequest(
            f"{name} must be an ISO 8601 time with its offset, such as"
            f" 2026-01-31T09:00:00Z; got {text[:40]!r}"
        )
    return moment


def _after(request: Request) -> str | None:
    after, cursor = request.query_params.get("after"), request.query_params.get("cursor")
    if after and cursor:
        raise BadRequest("pass cursor= (the Next-Cursor header) or after= (a run id), not both")
    return _decode_cursor(cursor) if cursor else after or None


async def list_runs(rt: durable.Runtime, request: Request) -> Response:
    """Runs, newest first, narrowed by status, workflow, a piece of the id (``q``, or
    ``prefix``), creation time (``since``, ``until``) or parent. When more follow, the
    ``Next-Cursor`` header holds what to pass as ``cursor=`` for the next page."""
    query, limit = request.query_params, _limit(request)
    runs = await rt.list_runs(
        status=query.get("status") or None,
        workflow=query.get("workflow") or None,
        limit=limit + 1,  # one more says whether a next page exists
        after=_after(request),
        since=_moment(request, "since"),
        until=_moment(request, "until"),
        parent=query.get("parent") or None,
        id_contains=query.get("q") or None,
        id_prefix=query.get("prefix") or None,
    )
    headers = {}
    if len(runs) > limit:
        runs = runs[:limit]
        headers["Next-Cursor"] = encode_cursor(runs[-1].run_id)
    return JSON([run.to_dict() for run in runs], headers=headers)


async def steps(rt: durable.Runtime, request: Request) -> Response:
    """The run's steps in position order, each with its input, result, idempotency key
    and every attempt (start, end, outcome, error, traceback): what the run page shows."""
    run_id = request.path_params["run_id"]
    by_position: dict[int, dict[str, Any]] = {}
    for event in await rt.history(run_id):
        if event["superseded"] or event["kind"] not in _STEP_KINDS:
            continue
        position, payload = event["position"], event["payload"]
        step = by_position.setdefault(position, _new_step(run_id, position, event["name"]))
        _take(step, event["kind"], payload if isinstance(payload, dict) else {}, event)
    return JSON([by_position[p] for p in sorted(by_position)])


_STEP_KINDS = frozenset({STEP_STARTED, STEP_COMPLETED, STEP_FAILED})


def _new_step(run_id: str, position: int, name: str) -> dict[str, Any]:
    return {
        "position": position,
        "name": name,
        "idempotency_key": idempotency_key(run_id, position, name),
        "status": "running",
        "input": None,
        "input_repr": None,
        "result": None,
        "attempts": [],
    }


def _take(step: dict[str, Any], kind: str, payload: dict[str, Any], event: dict[str, Any]) -> None:
    """Fold one of the step's events into it (journals from before inputs and tracebacks
    were kept lack them: those stay None)."""
    attempts: list[dict[str, Any]] = step["attempts"]
    if kind == STEP_STARTED:
        for earlier in attempts:
            if earlier["outcome"] == "running":
                earlier["outcome"] = "interrupted"  # started again: that one never ended
        if step["input"] is None and step["input_repr"] is None:
            step["input"], step["input_repr"] = payload.get("input"), payload.get("input_repr")
        number = payload.get("attempt", len(attempts) + 1)
        attempts.append(_attempt(number, event["created_at"]))
        step["status"] = "running"
        return
    current = attempts[-1] if attempts and attempts[-1]["outcome"] == "running" else None
    if current is None:  # an end with no start (a final failure without an attempt)
        current = _attempt(payload.get("attempt"), None)
        attempts.append(current)
    current["ended_at"] = event["created_at"]
    if kind == STEP_COMPLETED:
        current.update(outcome="completed", error=None, traceback=None, retry_at=None)
        step["status"], step["result"] = "completed", payload.get("result")
        return
    retry_at = payload.get("retry_at")
    current.update(
        outcome="failed",
        error=payload.get("error") or payload.get("final"),
        traceback=payload.get("traceback"),
        retry_at=None if retry_at is None else _iso(retry_at),
    )
    step["status"] = "retrying" if payload.get("final") is None else "failed"


def _attempt(number: Any, started_at: str | None) -> dict[str, Any]:
    return {
        "attempt": number,
        "started_at": started_at,
        "ended_at": None,
        "outcome": "running",
        "error": None,
        "traceback": None,
        "retry_at": None,
    }


def _iso(seconds: Any) -> str | None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()


async def workflows(rt: durable.Runtime, request: Request) -> Response:
    """The workflows registered in this server: what the start form offers (with the
    budget each run gets unless started with another)."""
    found = []
    for name, version in sorted(registry_keys()):
        wf = registered_spec(f"{name}@{version}")
        if wf is None:  # pragma: no cover - the registry changed in between
            continue
        found.append(
            {
                "name": name,
                "version": version,
                "parameters": [parameter for parameter, _ in wf.parameters()],
                "queue": None if wf.queue is None else wf.queue.name,
                "cron": None if wf.cron is None else wf.cron.expression,
                "budget": None if wf.budget is None else wf.budget.to_dict(),
                "doc": (wf.fn.__doc__ or "").strip().split("\n")[0],
            }
        )
    return JSON(found)


async def queues(rt: durable.Runtime, request: Request) -> Response:
    """Every queue with its depth (queued), its running runs, and its limits."""
    return JSON(
        [
            {
                "name": status.name,
                "queued": status.queued,
                "running": status.running,
                "concurrency": status.concurrency,
                "per_runtime": status.per_runtime,
                "rate": None if status.rate is None else list(status.rate),
            }
            for status in await rt.queues()
        ]
    )


async def schedules(rt: durable.Runtime, request: Request) -> Response:
    """Every cron schedule with its next tick and the run of its latest one."""
    return JSON([schedule.to_dict() for schedule in await rt.schedules()])
