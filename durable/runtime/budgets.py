"""Budgets over run trees: what applies to a run, what its tree spent, raising a cap.

A budget is held by the run that was started with it (``start_run(budget=)`` or
the workflow's own) and covers that run and every run below it. A run is held
back when any budget at or above it is reached, counting the committed charges
of the whole tree under that budget. All of it is read from the store, so any
process (a runtime, the CLI, the server) sees the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from durable._base.codec import encode, loads
from durable.errors import NoBudget, RunNotFound
from durable.journal.budget import (
    SPEND_TOLERANCE,
    Budget,
    Spend,
    Usage,
    by_step,
    caps,
    check_amounts,
    reached,
    spent,
    start_budget,
)
from durable.journal.kinds import BUDGET_RAISED
from durable.journal.records import EventRecord, Expect, NewEvent, RunRecord
from durable.store.ports import Store


@dataclass(frozen=True)
class Holder:
    """A run that holds a budget, with the budget it was started with."""

    run_id: str
    start: Budget


async def holders(store: Store, record: RunRecord) -> list[Holder]:
    """The budgets over ``record``'s run: its own first, then its ancestors'."""
    found: list[Holder] = []
    seen: set[str] = set()
    current: RunRecord | None = record
    while current is not None and current.run_id not in seen:
        seen.add(current.run_id)
        budget = start_budget(_input(current), current.run_id)
        if budget is not None:
            found.append(Holder(current.run_id, budget))
        parent = current.parent_run_id
        current = None if parent is None else await store.get_run(parent)
    return found


class Ledger:
    """What the runs of a tree have spent, and their raises, as last read: each check
    reads only what was committed since (a run's events follow one another by seq), so
    a run that charged ten thousand times costs its next check no more than its first."""

    def __init__(self) -> None:
        self._read: dict[str, int] = {}
        self._spend: dict[str, Spend] = {}
        self._raised: dict[str, EventRecord] = {}

    async def catch_up(self, store: Store, run_ids: Iterable[str]) -> None:
        found = await store.spend_events({run_id: self._read.get(run_id, 0) for run_id in run_ids})
        for run_id, events in found.items():
            if not events:
                continue
            self._read[run_id] = events[-1].seq
            self._spend[run_id] = self._spend.get(run_id, Spend()) + spent(events)
            raises = [event for event in events if event.kind == BUDGET_RAISED]
            if raises:
                self._raised[run_id] = raises[-1]

    def spend(self, run_ids: Iterable[str]) -> Spend:
        return sum((self._spend.get(run_id, Spend()) for run_id in run_ids), Spend())

    def caps(self, holder: Holder) -> Budget | None:
        raised = self._raised.get(holder.run_id)
        return caps(holder.start, [] if raised is None else [raised])


async def held(store: Store, chain: Sequence[Holder], ledger: Ledger) -> dict[str, Any] | None:
    """The first budget of ``chain`` (nearest first) that its tree's spend has reached:
    the question to ask and what it is about; None when none is."""
    if not chain:
        return None
    tree = await _tree(store, chain[-1].run_id)
    await ledger.catch_up(store, tree)
    for holder in chain:
        budget = ledger.caps(holder)
        if budget is None:
            continue
        spend = ledger.spend(_below(tree, holder.run_id))
        unit = reached(budget, spend)
        if unit is not None:
            return {
                "question": _question(holder.run_id, unit, spend, budget),
                "run_id": holder.run_id,
                "unit": unit,
                "spent": spend.to_dict(),
                "cap": budget.to_dict(),
            }
    return None


async def usage(store: Store, run_id: str) -> Usage:
    """What ``run_id`` and the runs below it spent, and the budget that applies to it."""
    record = await store.get_run(run_id)
    if record is None:
        raise RunNotFound(run_id)
    chain = await holders(store, record)
    tree = await _tree(store, run_id)
    ids = list(tree) + [holder.run_id for holder in chain if holder.run_id not in tree]
    events = await store.spend_events(dict.fromkeys(ids, 0))
    total = sum((spent(events[member]) for member in tree), Spend())
    budget = holder_id = None
    if chain:
        holder_id = chain[0].run_id
        budget = caps(chain[0].start, events.get(holder_id, []))
    return Usage(
        run_id=run_id,
        usd=total.usd,
        tokens=total.tokens,
        by_step=by_step(events[run_id]),
        own=spent(events[run_id]),
        budget=budget,
        budget_run_id=holder_id,
    )


async def raise_caps(
    store: Store,
    run_id: str,
    holder_id: str | None,
    usd: float | None,
    tokens: int | None,
    now: float,
) -> tuple[str, Budget]:
    """Raise the budget of ``holder_id`` (None: the nearest at or above ``run_id``) to
    the amounts given, never below what its tree spent; returns its id and new caps."""
    if usd is None and tokens is None:
        raise ValueError("raise_budget needs an amount: usd=..., tokens=..., or both")
    check_amounts(usd, tokens, "raise_budget's")
    record = await store.get_run(run_id)
    if record is None:
        raise RunNotFound(run_id)
    chain = await holders(store, record)
    holder = next((h for h in chain if holder_id in (None, h.run_id)), None)
    if holder is None:
        raise NoBudget(
            f"run {run_id!r} has no budget over it to raise; start a run with"
            " budget=durable.Budget(...) or give its workflow one"
        )
    tree = await _tree(store, holder.run_id)
    ledger = Ledger()
    await ledger.catch_up(store, tree)
    now_caps = ledger.caps(holder) or holder.start
    spend = ledger.spend(tree)
    if usd is not None and usd < spend.usd - SPEND_TOLERANCE:
        raise ValueError(f"usd={usd} is below what run {holder.run_id!r} spent: ${spend.usd:.4f}")
    if tokens is not None and tokens < spend.tokens:
        raise ValueError(
            f"tokens={tokens} is below what run {holder.run_id!r} spent: {spend.tokens} tokens"
        )
    raised = Budget(
        usd=now_caps.usd if usd is None else float(usd),
        tokens=now_caps.tokens if tokens is None else tokens,
    )
    text = encode(raised.to_dict())
    # A holder that ended may still have runs below it that spend (a child it started and
    # did not await): its budget is raised all the same.
    raise_event = NewEvent(holder.run_id, None, BUDGET_RAISED, "budget", text, now)
    await store.send(raise_event, Expect(active=False))
    return holder.run_id, raised


async def tree_ids(store: Store, run_id: str) -> list[str]:
    """``run_id`` and every run below it."""
    return list(await _tree(store, run_id))


async def _tree(store: Store, run_id: str) -> dict[str, str | None]:
    """``run_id`` and every run below it, each with its parent."""
    tree = await store.run_tree(run_id)
    return tree or {run_id: None}


def _below(tree: dict[str, str | None], top: str) -> list[str]:
    """The runs of ``tree`` at or below ``top``."""
    under = []
    for run_id in tree:
        current: str | None = run_id
        while current is not None and current != top:
            current = tree.get(current)
        if current == top:
            under.append(run_id)
    return under


def _input(record: RunRecord) -> Any:
    try:
        return loads(record.input) if record.input else None
    except ValueError:
        return None  # an unreadable input holds no budget; the run fails on its own


def _question(holder: str, unit: str, spend: Spend, budget: Budget) -> str:
    if unit == "usd":
        what = f"${spend.usd:.4f} of its ${budget.usd} budget"
    else:
        what = f"{spend.tokens} of its {budget.tokens} tokens"
    return (
        f"run {holder!r} and the runs below it spent {what}; raise it"
        f" (rt.raise_budget({holder!r}, {unit}=...), durable budget {holder} --{unit} N)"
        " or answer 'stop'"
    )
