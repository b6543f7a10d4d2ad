"""The JSON API: runs, their history, state and questions, starting, answering, cancelling,
and streams as Server-Sent Events.

Every error is ``{"code", "message"}`` with a status that fits it: 404 for an
unknown run or workflow, 400 for an answer that is not an option or a budget
amount that cannot be, 409 for a run id reused with other input, an answer to
no open question, a duplicate in a queue or a raise with no budget to raise, 422
for a body that does not fit, 401 without the token or with a webhook signed
wrong, 413 for a body over the limit, 421 for a Host this server does not answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import orjson
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import durable
from durable.journal.kinds import RERUN, RESUMED
from durable.server import _budgets as budgets
from durable.server import _reads as reads
from durable.server._guard import (
    WILDCARDS,
    BodyLimit,
    HostRule,
    SlashesInSegments,
    TokenRule,
    allowed_hosts,
)
from durable.server._guard import segment as _segment
from durable.server._http import JSON, BadRequest, Handler, error, read_body
from durable.server._metrics import metrics_page
from durable.server._openapi import OPENAPI
from durable.workflow.decorators import registered_spec


def create_app(
    rt: durable.Runtime,
    token: str | None = None,
    *,
    host: str | None = None,
    allowed_host: Iterable[str] = (),
    max_body: int | None = None,
) -> Starlette:
    """The API over ``rt``; with ``token``, every request but the page's and webhooks'
    must bear it. With ``host`` (the address served), a request naming another Host
    than it or one of ``allowed_host`` is refused. A body over ``max_body`` bytes
    (default: the runtime's ``max_value_bytes``, else 10 MB) is refused."""

    def route(path: str, handler: Handler, *methods: str) -> Route:
        return _route(rt, path, handler, *methods)

    routes = [
        route("/api/runs", reads.list_runs),
        route("/api/runs/{run_id}", _get_run),
        route("/api/runs/{run_id}/history", _history),
        route("/api/runs/{run_id}/steps", reads.steps),
        route("/api/workflows", reads.workflows),
        route("/api/queues", reads.queues),
        route("/api/schedules", reads.schedules),
        route("/api/runs/{run_id}/state", _state),
        route("/api/runs/{run_id}/waits", _waits),
        route("/api/runs/{run_id}/respond", _respond, "POST"),
        route("/api/runs/{run_id}/events/{name}", _send_event, "POST"),
        route("/api/runs/{run_id}/cancel", _cancel, "POST"),
        route("/api/runs/{run_id}/streams/{key}", _stream),
        route("/api/workflows/{name}/runs", _start, "POST"),
        route("/api/runs/{run_id}/resume", _resume, "POST"),
        route("/api/runs/{run_id}/rerun", _rerun, "POST"),
        route("/api/runs/{run_id}/usage", budgets.usage),
        route("/api/runs/{run_id}/budget", budgets.raise_budget, "POST"),
        route("/webhooks/{name}", _webhook, "POST"),
        route("/metrics", metrics_page),
        Route("/openapi.json", _openapi),
        Route("/", _page),
        Mount("/static", StaticFiles(directory=_STATIC), name="static"),
    ]
    limit = max_body if max_body is not None else rt.options.max_value_bytes or 10_000_000
    return Starlette(routes=routes, middleware=_guards(token, host, allowed_host, limit))


def _route(rt: durable.Runtime, path: str, handler: Handler, *methods: str) -> Route:
    """A route calling ``handler`` with ``rt``: a POST must be JSON, path segments are
    decoded, and errors become ``{"code", "message"}`` with their status."""

    async def endpoint(request: Request) -> Response:
        if request.method == "POST" and not _is_json(request):
            # A page of another site can post a form, or text, or nothing with
            # fetch(no-cors), to this address; JSON it cannot send without the
            # browser asking first (CORS), which this server never allows.
            return error("NOT_JSON", "POST requests must have Content-Type: application/json", 415)
        request.scope["path_params"] = {
            key: _segment(value) for key, value in request.path_params.items()
        }
        try:
            return await handler(rt, request)
        except BadRequest as exc:
            return error("INVALID_REQUEST", str(exc))
        except durable.DurableError as exc:
            return error(exc.code, exc.message)
        except (ValueError, TypeError) as exc:
            return error("INVALID_REQUEST", str(exc))

    return Route(path, endpoint, methods=list(methods) or ["GET"])


def _guards(
    token: str | None, host: str | None, allowed_host: Iterable[str], limit: int
) -> list[Middleware]:
    """What every request passes before a route, the outermost first (see ``_guard``)."""
    middleware = []
    if host is not None:
        hosts = allowed_hosts(host, allowed_host)
        middleware.append(Middleware(HostRule, hosts=hosts, any_ip=host in WILDCARDS))
    middleware.append(Middleware(SlashesInSegments))
    if token is not None:
        middleware.append(Middleware(TokenRule, token=token))
    middleware.append(Middleware(BodyLimit, limit=limit))
    return middleware


async def _openapi(request: Request) -> Response:
    return JSON(OPENAPI)


_STATIC = Path(__file__).with_name("static")


async def _page(request: Request) -> Response:
    """The web view: plain HTML, CSS and JavaScript shipped in the package."""
    return FileResponse(_STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def _resume(rt: durable.Runtime, request: Request) -> Response:
    """Resume the failed run; answers what that did: ``{"resumed": "step", "position",
    "step"}`` (its failed step is run again) or ``{"resumed": "replay"}`` (its journal
    is replayed under the code loaded now)."""
    run_id = request.path_params["run_id"]
    await rt.resume(run_id)
    for event in reversed(await rt.history(run_id)):
        if event["kind"] == RERUN and isinstance(event["payload"], dict):
            position = event["payload"].get("position")
            name = await _step_name(rt, run_id, position)
            return JSON({"ok": True, "resumed": "step", "position": position, "step": name})
        if event["kind"] == RESUMED:
            break
    return JSON({"ok": True, "resumed": "replay"})


async def _step_name(rt: durable.Runtime, run_id: str, position: Any) -> str | None:
    for event in await rt.history(run_id):
        if event["position"] == position:
            return str(event["name"])
    return None


async def _rerun(rt: durable.Runtime, request: Request) -> Response:
    body = await read_body(request)
    position = body.get("position") if isinstance(body, dict) else None
    if isinstance(position, bool) or not isinstance(position, int):
        raise BadRequest('send {"position": <the position to re-run from>}')
    await rt.rerun_from(request.path_params["run_id"], position)
    return JSON({"ok": True, "position": position})


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip() == "application/json"


async def _get_run(rt: durable.Runtime, request: Request) -> Response:
    return JSON((await rt.get_run(request.path_params["run_id"])).to_dict())


async def _history(rt: durable.Runtime, request: Request) -> Response:
    return JSON(await rt.history(request.path_params["run_id"]))


async def _state(rt: durable.Runtime, request: Request) -> Response:
    return JSON(await rt.get_state(request.path_params["run_id"]))


async def _waits(rt: durable.Runtime, request: Request) -> Response:
    run_id = request.path_params["run_id"]
    await rt.get_run(run_id)
    return JSON([wait.to_dict() for wait in await rt.pending_waits(run_id)])


async def _respond(rt: durable.Runtime, request: Request) -> Response:
    body = await read_body(request)
    if not isinstance(body, dict) or "value" not in body:
        raise BadRequest('send {"value": ..., "wait_id": null}')
    wait_id = body.get("wait_id")
    if wait_id is not None and not isinstance(wait_id, str):
        raise BadRequest(f"wait_id must be a string or null, got {wait_id!r}")
    await rt.respond(request.path_params["run_id"], body["value"], wait_id=wait_id)
    return JSON({"ok": True})


async def _send_event(rt: durable.Runtime, request: Request) -> Response:
    payload = await read_body(request)
    key = request.headers.get("idempotency-key")
    await rt.send_event(
        request.path_params["run_id"], request.path_params["name"], payload, key=key
    )
    return JSON({"ok": True})


async def _cancel(rt: durable.Runtime, request: Request) -> Response:
    await rt.cancel(request.path_params["run_id"])
    return JSON({"ok": True})


async def _start(rt: durable.Runtime, request: Request) -> Response:
    wf = _workflow(request.path_params["name"])
    body = await read_body(request)
    body = {} if body is None else body
    if not isinstance(body, dict) or set(body) - {"args", "kwargs", "budget"}:
        raise BadRequest('send {"args": [...], "kwargs": {...}, "budget": null}')
    args, kwargs = body.get("args", []), body.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise BadRequest('"args" must be a list and "kwargs" an object')
    budget = budgets.start_budget(body)
    run_id = request.headers.get("idempotency-key") or None
    handle = await rt.start_run(wf, args, kwargs, run_id=run_id, budget=budget)
    return JSON({"run_id": handle.run_id}, status_code=201)


def _workflow(spec: str) -> durable.Workflow[Any, Any]:
    wf = registered_spec(spec)
    if wf is None:
        error = durable.DurableError(
            f"no workflow {spec!r} is registered in this server; start it with the modules"
            " that define it (durable serve MODULE...)"
        )
        error.code = "WORKFLOW_NOT_FOUND"  # type: ignore[misc]
        raise error
    return wf


async def _stream(rt: durable.Runtime, request: Request) -> Response:
    """Server-Sent Events: each item as ``id: <cursor>``, ``event: value|retract`` and
    ``data: <item as JSON>``, then ``event: end``. A reconnecting client's
    ``Last-Event-ID`` (or ``?after=``) resumes just past that cursor."""
    run_id, key = request.path_params["run_id"], request.path_params["key"]
    after = _cursor(request.headers.get("last-event-id") or request.query_params.get("after"))
    await rt.get_run(run_id)  # RunNotFound before the stream begins

    async def events() -> AsyncIterator[bytes]:
        async for item in rt.read_stream(run_id, key, after=after):
            head = f"id: {item.cursor}\nevent: {item.kind}\ndata: ".encode()
            yield head + orjson.dumps(item.to_dict()) + b"\n\n"
        yield b"event: end\ndata: null\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _cursor(text: str | None) -> int | None:
    """A stream cursor from ``Last-Event-ID`` or ``?after=``, or a 422 that says what it is."""
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit():
        raise BadRequest(
            f"a stream cursor (Last-Event-ID or ?after=) is the id of an event this stream"
            f" sent, a whole number; got {text[:40]!r}"
        )
    return int(text)


async def _webhook(rt: durable.Runtime, request: Request) -> Response:
    """A delivery signed as the Standard Webhooks specification says starts a run with
    the JSON body. Its ``webhook-id`` is the run id, and is signed with the timestamp
    and the body: a redelivery, or a replay of a captured one, starts nothing new, and a
    wrong or missing signature or a timestamp five minutes off is a 401 that starts
    nothing."""
    wf = _workflow(request.path_params["name"])
    if wf.webhook_secret is None:
        return error("WORKFLOW_NOT_FOUND", f"workflow {wf.name!r} takes no webhooks", 404)
    raw = await request.body()
    headers = _webhook_headers(request)
    try:
        Webhook(wf.webhook_secret).verify(raw, headers, json_parse=False)
    except WebhookVerificationError as exc:
        return error(
            "BAD_SIGNATURE",
            f"{exc}: sign deliveries as Standard Webhooks do (webhook-id, webhook-timestamp"
            " within five minutes of now, webhook-signature: v1,<base64 HMAC-SHA256 of"
            " id.timestamp.body under the workflow's whsec_ secret>)",
            401,
        )
    body = await read_body(request)
    handle = await rt.start_run(wf, [body], {}, run_id=headers["webhook-id"])
    return JSON({"run_id": handle.run_id}, status_code=202)


def _webhook_headers(request: Request) -> dict[str, str]:
    """The request's headers, with Svix's ``svix-id``, ``svix-timestamp`` and
    ``svix-signature`` (the same scheme under its own names, what Svix sends unless
    told otherwise) as their ``webhook-`` names when those are missing."""
    headers = dict(request.headers)
    for part in ("id", "timestamp", "signature"):
        if f"webhook-{part}" not in headers and f"svix-{part}" in headers:
            headers[f"webhook-{part}"] = headers[f"svix-{part}"]
    return headers
