"""The OpenAPI description of the JSON API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any


def _op(summary: str, *, body: str | None = None, status: str = "200") -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {
            status: {"description": "done", "content": {"application/json": {}}},
            "default": {"$ref": "#/components/responses/Error"},
        },
    }
    if body is not None:
        operation["requestBody"] = {
            "description": body,
            "content": {"application/json": {"schema": {}}},
        }
    return operation


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_RUN = [_path("run_id")]
_TEXT = {"type": "string"}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "durable", "version": "1"},
    "paths": {
        "/api/runs": {
            "get": _op(
                "runs, newest first (query: status, workflow, q (a piece of the id), prefix,"
                " since, until (ISO 8601), parent, limit (1 to 1000), cursor (the Next-Cursor"
                " header of the page before; absent on the last page))"
            )
        },
        "/api/runs/{run_id}/steps": {
            "parameters": _RUN,
            "get": _op("its steps: input, result, idempotency key, every attempt"),
        },
        "/api/workflows": {"get": _op("the workflows this server can start")},
        "/api/queues": {"get": _op("every queue: queued, running, limits")},
        "/api/schedules": {"get": _op("every cron schedule: next tick, latest run")},
        "/api/runs/{run_id}": {"parameters": _RUN, "get": _op("one run")},
        "/api/runs/{run_id}/history": {"parameters": _RUN, "get": _op("the run's events")},
        "/api/runs/{run_id}/state": {"parameters": _RUN, "get": _op("the run's ctx.state")},
        "/api/runs/{run_id}/waits": {"parameters": _RUN, "get": _op("its open questions")},
        "/api/runs/{run_id}/respond": {
            "parameters": _RUN,
            "post": _op("answer its question", body='{"value": ..., "wait_id": null}'),
        },
        "/api/runs/{run_id}/events/{name}": {
            "parameters": [*_RUN, _path("name")],
            "post": _op(
                "send it an event (Idempotency-Key: kept once)", body="the event's payload"
            ),
        },
        "/api/runs/{run_id}/cancel": {"parameters": _RUN, "post": _op("cancel it")},
        "/api/runs/{run_id}/resume": {
            "parameters": _RUN,
            "post": _op("resume a failed run; says what it did"),
        },
        "/api/runs/{run_id}/rerun": {
            "parameters": _RUN,
            "post": _op("re-run a finished run from a position", body='{"position": 3}'),
        },
        "/api/runs/{run_id}/usage": {
            "parameters": _RUN,
            "get": _op(
                "what the run and the runs below it spent (usd, tokens), its own spend"
                " (own) and per step (by_step), the budget over it and the run that holds it"
            ),
        },
        "/api/runs/{run_id}/budget": {
            "parameters": _RUN,
            "post": _op(
                "raise the budget over the run to these caps (never below what was spent;"
                " 400 INVALID_AMOUNT, 409 NO_BUDGET); the runs it held back go on; answers"
                ' {"budget_run_id", "budget": {"usd", "tokens"}}',
                body='{"usd": 25.0, "tokens": 200000} (either may be left out)',
            ),
        },
        "/webhooks/{name}": {
            "parameters": [_path("name")],
            "post": _op(
                "a delivery signed as Standard Webhooks say (webhook-id, webhook-timestamp,"
                " webhook-signature) starts a run whose id is the webhook-id",
                body="the JSON the workflow receives",
                status="202",
            ),
        },
        "/metrics": {
            "get": {
                "summary": (
                    "runs, step attempts, spend, queues and takeovers in Prometheus text format"
                ),
                "responses": {"200": {"description": "metrics", "content": {"text/plain": {}}}},
            },
        },
        "/api/runs/{run_id}/streams/{key}": {
            "parameters": [*_RUN, _path("key")],
            "get": {
                "summary": (
                    "a stream as Server-Sent Events: id: <cursor>, event: value|retract,"
                    " data: the item as JSON; Last-Event-ID or ?after= resumes past a cursor"
                ),
                "responses": {
                    "200": {"description": "events", "content": {"text/event-stream": {}}}
                },
            },
        },
        "/api/workflows/{name}/runs": {
            "parameters": [_path("name")],
            "post": _op(
                "start a run (Idempotency-Key: its run id)",
                body='{"args": [...], "kwargs": {...}, "budget": {"usd": 5.0, "tokens": null}}'
                " (budget optional: caps what the run and the runs below it may spend)",
                status="201",
            ),
        },
    },
    "components": {
        "responses": {
            "Error": {
                "description": '{"code", "message"}',
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    }
                },
            }
        }
    },
}
