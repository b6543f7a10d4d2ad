"""Budgets over HTTP: what a run tree spent (``GET /api/runs/{id}/usage``), raising the
cap over a run (``POST /api/runs/{id}/budget``), and the budget a started run is given.

A bad amount or one below what was spent is a 400 (``INVALID_AMOUNT``), a run with no
budget over it a 409 (``NO_BUDGET``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

import durable
from durable.server._http import JSON, BadRequest, error, read_body

AMOUNTS = {"usd", "tokens"}


async def usage(rt: durable.Runtime, request: Request) -> Response:
    """The run's ``Usage``: its tree's spend, its own by step, the budget over it."""
    return JSON((await rt.usage(request.path_params["run_id"])).to_dict())


async def raise_budget(rt: durable.Runtime, request: Request) -> Response:
    """Raise the budget over the run to ``{"usd", "tokens"}`` (either may be left out or
    null: that cap stays); answers the new caps and the run that holds them."""
    body = await read_body(request)
    if not isinstance(body, dict) or set(body) - AMOUNTS:
        raise BadRequest('send {"usd": <dollars>, "tokens": <tokens>} (either may be null)')
    try:
        raised = await rt.raise_budget(
            request.path_params["run_id"], usd=body.get("usd"), tokens=body.get("tokens")
        )
    except ValueError as exc:  # no amount, a bad one, or one below what the tree spent
        return error("INVALID_AMOUNT", str(exc), 400)
    assert raised.budget is not None  # the caps just raised
    return JSON(
        {"ok": True, "budget_run_id": raised.budget_run_id, "budget": raised.budget.to_dict()}
    )


def start_budget(body: dict[str, Any]) -> durable.Budget | None:
    """The ``"budget"`` of a start request's body, or None; a 422 when it does not fit."""
    given = body.get("budget")
    if given is None:
        return None
    if not isinstance(given, dict) or set(given) - AMOUNTS:
        raise BadRequest('"budget" must be {"usd": <dollars>, "tokens": <tokens>}')
    try:
        return durable.Budget(usd=given.get("usd"), tokens=given.get("tokens"))
    except ValueError as exc:
        raise BadRequest(f'"budget": {exc}') from None
