"""Budgets on the command line: ``budget RUN --usd X --tokens N`` raises a cap, ``usage
RUN`` prints what a run tree spent against its budget, and the spend that ``runs`` and
``show`` print.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import orjson

import durable
from durable.cli._exits import USAGE, Exit


def usd_amount(text: str) -> float:
    """A dollar amount for ``--usd``: a finite number >= 0 (a usage error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of dollars >= 0, e.g. 25.5")
    return value


def token_amount(text: str) -> int:
    """A number of tokens for ``--tokens``: a whole number >= 0 (``1_000_000`` too)."""
    digits = text.replace("_", "")
    if not (digits.isascii() and digits.isdigit()) or int(digits) >= 2**63:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of tokens below 2**63, e.g. 200000"
        )
    return int(digits)


def add_commands(command: Any) -> None:
    """``budget`` and ``usage``, through the parser's ``command`` (see ``_parser``)."""
    raising = command(
        "budget",
        "raise the budget over a run to these caps, so the runs it holds back go on",
        "Exit codes: 0 raised; 1 unknown run, no budget over the run, or an amount below"
        " what its tree spent; 2 usage (no amount, or one that is not a number >= 0).",
    )
    raising.add_argument("run_id", metavar="RUN_ID", help="the run (or one below the holder)")
    raising.add_argument("--usd", type=usd_amount, help="the new dollar cap")
    raising.add_argument("--tokens", type=token_amount, help="the new token cap")
    raising.add_argument("--json", action="store_true", help="print the new caps as JSON")
    usage = command("usage", "what a run and the runs below it spent, per step, and its budget")
    usage.add_argument("run_id", metavar="RUN_ID", help="the run's id")
    usage.add_argument("--json", action="store_true", help="print JSON instead of text")


async def raise_budget(rt: durable.Runtime, args: argparse.Namespace) -> None:
    if args.usd is None and args.tokens is None:
        raise Exit("budget needs the new cap: --usd AMOUNT, --tokens N, or both", USAGE)
    raised = await rt.raise_budget(args.run_id, usd=args.usd, tokens=args.tokens)
    assert raised.budget is not None  # the caps just raised
    if args.json:
        _print_json({"budget_run_id": raised.budget_run_id, "budget": raised.budget.to_dict()})
        return
    print(f"raised the budget of run {raised.budget_run_id} to {caps_text(raised.budget)}")


async def usage(rt: durable.Runtime, args: argparse.Namespace) -> None:
    found = await rt.usage(args.run_id)
    if args.json:
        _print_json(found.to_dict())
        return
    print(f"run       {found.run_id}")
    print(f"spent     {spend_text(found.usd, found.tokens)} (the run and the runs below it)")
    print(f"own       {spend_text(found.own.usd, found.own.tokens)}")
    if found.budget is None:
        print("budget    none")
    else:
        held = "" if found.budget_run_id == found.run_id else f" (held by {found.budget_run_id})"
        print(f"budget    {caps_text(found.budget)}{held}")
    if found.by_step:
        print("by step (#N is the step's position; attempts that charged)")
        for position, step in found.by_step.items():
            print(
                f"  #{position:<4} {step.step}  {spend_text(step.usd, step.tokens)}"
                f"  ({step.attempts} attempt(s))"
            )


async def spend_line(rt: durable.Runtime, run: durable.RunInfo) -> str | None:
    """``show``'s spend: the tree's, against the budget over it; None when the run has no
    budget and nothing was spent."""
    try:
        found = await rt.usage(run.run_id)
    except durable.DurableError:
        return None
    if found.budget is None and not (found.usd or found.tokens):
        return None
    line = f"{spend_text(found.usd, found.tokens)} (the run and the runs below it)"
    if found.budget is not None:
        line += f"; budget {caps_text(found.budget)} held by {found.budget_run_id}"
    return line + f"; durable usage {run.run_id} for each step"


def caps_text(budget: durable.Budget) -> str:
    usd = "no cap" if budget.usd is None else f"${budget.usd:g}"
    tokens = "no cap" if budget.tokens is None else f"{budget.tokens}"
    return f"usd {usd}, tokens {tokens}"


def spend_text(usd: float, tokens: int) -> str:
    """``$0.0312, 1200 tokens``; ``-`` when nothing was spent."""
    if not usd and not tokens:
        return "-"
    return f"${usd:.4f}, {tokens} tokens"


async def usages(rt: durable.Runtime, runs: list[durable.RunInfo]) -> list[durable.Usage | None]:
    """What each run's tree spent (``rt.usage``), None for a run whose journal or budget
    cannot be read."""
    found: list[durable.Usage | None] = []
    for run in runs:
        try:
            found.append(await rt.usage(run.run_id))
        except durable.DurableError:
            found.append(None)
    return found


def spend_cell(found: durable.Usage | None) -> str:
    """The ``runs`` table's SPEND: the tree's spend, and the caps when a budget applies."""
    if found is None:
        return "?"
    cell = spend_text(found.usd, found.tokens)
    if found.budget is not None:
        caps = [] if found.budget.usd is None else [f"${found.budget.usd:g}"]
        caps += [] if found.budget.tokens is None else [f"{found.budget.tokens} tokens"]
        cell += f" (budget {', '.join(caps)})"
    return cell


def charges_by_position(events: list[dict[str, Any]]) -> dict[int, tuple[float, int]]:
    """A run's ``budget.charged`` events added up by the position of the step that
    made them, for the timeline's step lines."""
    found: dict[int, tuple[float, int]] = {}
    for event in events:
        data = event["payload"]
        if event["kind"] != "budget.charged" or event["superseded"] or not isinstance(data, dict):
            continue
        usd, tokens = found.get(data.get("position", -1), (0.0, 0))
        usd += float(data.get("usd") or 0.0)
        found[data.get("position", -1)] = (usd, tokens + int(data.get("tokens") or 0))
    return found


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
