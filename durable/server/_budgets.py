"""Budgets over HTTP: what a run tree spent (``GET /api/runs/{id}/usage``), raising the
cap over a run (``POST /api/runs/{id}/budget``), and the budget a started run is given.

A bad amount or one below what was spent is a 400 (``INVALID_AMOUNT``), a run with no
budget over it or one that has ended a 409 (``NO_BUDGET``, ``RUN_ENDED``).
"""

from __future__ import annotations

import math
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
    run_id = request.path_params["run_id"]
    body = await read_body(request)
    if not isinstance(body, dict) or set(body) - AMOUNTS:
        raise BadRequest('send {"usd": <dollars>, "tokens": <tokens>} (either may be null)')
    usd, tokens = body.get("usd"), body.get("tokens")
    problem = _amount_problem(usd, tokens)
    if problem is not None:
        return error("INVALID_AMOUNT", problem, 400)
    holder = await _holder(rt, run_id)
    if holder is None:
        return error(
            "NO_BUDGET",
            f"run {run_id!r} has no budget over it to raise; start it with"
            ' {"budget": {"usd": ...}} or give its workflow one',
            409,
        )
    try:
        raised = await rt.raise_budget(run_id, usd=usd, tokens=tokens)
    except ValueError as exc:  # below what the tree spent
        return error("INVALID_AMOUNT", str(exc), 400)
    except durable.DurableError as exc:
        return error(exc.code, exc.message, 409 if exc.code == "RUN_ENDED" else None)
    return JSON({"ok": True, "budget_run_id": holder, "budget": raised.to_dict()})


def _amount_problem(usd: Any, tokens: Any) -> str | None:
    """What is wrong with the amounts sent, or None."""
    if usd is None and tokens is None:
        return 'send the new cap: {"usd": 25.0}, {"tokens": 200000}, or both'
    if usd is not None and (
        isinstance(usd, bool)
        or not isinstance(usd, int | float)
        or not math.isfinite(usd)
        or usd < 0
    ):
        return f"usd must be a number >= 0, got {usd!r}"
    if tokens is not None and (
        isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0
    ):
        return f"tokens must be a whole number >= 0, got {tokens!r}"
    return None


async def _holder(rt: durable.Runtime, run_id: str) -> str | None:
    """The run whose budget a raise at ``run_id`` raises: the one its open budget question
    names, else the nearest at or above it; None when no budget applies."""
    for wait in await rt.pending_waits(run_id):
        if wait.input_type == "budget" and wait.budget:
            return str(wait.budget["run_id"])
    return (await rt.usage(run_id)).budget_run_id


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
