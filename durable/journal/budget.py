"""Budgets as the journal holds them: caps, spend, and what a run tree has spent.

A run's budget is stored with its input (``{"budget": {"usd": ..., "tokens": ...}}``)
and raised by ``budget.raised`` events in its journal; spend is the run's
``budget.charged`` events, each tagged with the step position and attempt that
made it, so a crashed attempt's spend counts and a replay adds none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from durable.errors import CorruptJournal
from durable.journal.kinds import BUDGET_CHARGED, BUDGET_RAISED
from durable.journal.records import EventRecord
from durable.journal.run_journal import corrupt, payload, stored


@dataclass(frozen=True)
class Budget:
    """Caps on what a run tree may spend: dollars, tokens, or both (None: no cap)."""

    usd: float | None = None
    tokens: int | None = None

    def __post_init__(self) -> None:
        if self.usd is None and self.tokens is None:
            raise ValueError("a Budget needs a cap: Budget(usd=5.0), Budget(tokens=100_000)")
        check_amounts(self.usd, self.tokens, "a Budget's")
        if self.usd is not None:
            object.__setattr__(self, "usd", float(self.usd))  # a Decimal is kept as JSON holds it

    def to_dict(self) -> dict[str, Any]:
        return {"usd": self.usd, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, data: Any) -> Budget | None:
        """The budget a stored ``{"usd", "tokens"}`` object names; None if it names none;
        ``ValueError`` for amounts no budget holds."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ValueError(f"a budget is an object of usd and tokens, not {data!r:.60}")
        if data.get("usd") is None and data.get("tokens") is None:
            return None
        return cls(usd=data.get("usd"), tokens=data.get("tokens"))


def check_amounts(usd: object, tokens: object, whose: str) -> None:
    """``ValueError`` naming the rule unless each amount is None or a finite number >= 0
    (a ``Decimal`` too, as price tables give them; tokens: an integer below 2**63)."""
    if usd is not None and not _dollars(usd):
        raise ValueError(f"{whose} usd must be a finite number >= 0, got {usd!r:.60}")
    if tokens is not None and (
        isinstance(tokens, bool) or not isinstance(tokens, int) or not 0 <= tokens < 2**63
    ):
        raise ValueError(f"{whose} tokens must be an integer from 0 to 2**63-1, got {tokens!r}")


def _dollars(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return False
    try:
        return math.isfinite(value) and value >= 0 and math.isfinite(float(value))
    except OverflowError:  # an int too large for a float
        return False


SPEND_TOLERANCE = 1e-9
"""Dollars within which spend counts as at a cap: charges are floats, and ten charges of
0.1 must reach a cap of 1.0."""


@dataclass(frozen=True)
class Spend:
    """Dollars and tokens spent."""

    usd: float = 0.0
    tokens: int = 0

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.usd + other.usd, self.tokens + other.tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"usd": self.usd, "tokens": self.tokens}


MOST_USD = 1e12
MOST_TOKENS = 10**12
"""The most one charge may hold: sums of many stay finite and within 64 bits."""


def check_charge(usd: object, tokens: object) -> None:
    """``ValueError`` naming the rule unless a charge's amounts are each 0 to the most."""
    check_amounts(usd, tokens, "a charge's")  # numbers from here on, or None
    if float(cast(float, usd or 0)) > MOST_USD or cast(int, tokens or 0) > MOST_TOKENS:
        raise ValueError(
            f"a charge holds at most ${MOST_USD:.0e} and {MOST_TOKENS:.0e} tokens,"
            f" got usd={usd!r:.30}, tokens={tokens!r:.30}; charge in parts"
        )


@dataclass(frozen=True)
class StepUsage:
    """What the step at one position spent, over all its attempts."""

    step: str
    usd: float
    tokens: int
    attempts: int
    """How many of its attempts charged anything (a crashed attempt's spend counts)."""


@dataclass(frozen=True)
class Usage:
    """What a run spent: ``usd`` and ``tokens`` over the run and every run below it,
    ``by_step`` its own spend by step position; ``budget`` the caps that apply to it now
    and ``budget_run_id`` the run that holds them (None: no budget applies)."""

    run_id: str
    usd: float
    tokens: int
    by_step: dict[int, StepUsage] = field(default_factory=dict)
    own: Spend = Spend()
    """The run's own spend, its children's left out."""
    budget: Budget | None = None
    budget_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "usd": self.usd,
            "tokens": self.tokens,
            "own": self.own.to_dict(),
            "by_step": {str(position): vars(step) for position, step in self.by_step.items()},
            "budget": None if self.budget is None else self.budget.to_dict(),
            "budget_run_id": self.budget_run_id,
        }


def charge_payload(usd: float, tokens: int, position: int, attempt: int) -> dict[str, Any]:
    return {"usd": usd, "tokens": tokens, "position": position, "attempt": attempt}


def spent(events: list[EventRecord]) -> Spend:
    """What a run's ``budget.charged`` events add up to (other events are skipped)."""
    dollars: list[float] = []
    tokens = 0
    for event in events:
        data = _charge(event)
        if data is not None:
            dollars.append(float(data.get("usd") or 0.0))
            tokens += int(data.get("tokens") or 0)
    return Spend(math.fsum(dollars), tokens)


def _charge(event: EventRecord) -> dict[str, Any] | None:
    """A charge event's payload (None for another kind); ``CorruptJournal`` naming the
    run and the event for one no version writes: a budget cannot be kept on a guess."""
    if event.kind != BUDGET_CHARGED:
        return None
    data: dict[str, Any] = payload(event)
    try:
        check_charge(data.get("usd"), data.get("tokens"))
    except ValueError as error:
        raise corrupt(event, f"a charge no version writes ({error}); correct it") from None
    return data


def by_step(events: list[EventRecord]) -> dict[int, StepUsage]:
    """A run's spend by the position of the step that charged it."""
    steps: dict[int, tuple[str, float, int, set[Any]]] = {}
    for event in events:
        data = _charge(event)
        if data is None:
            continue
        name, usd, tokens, tries = steps.get(data["position"], (event.name, 0.0, 0, set()))
        tries.add(data.get("attempt"))
        usd += float(data.get("usd") or 0.0)
        steps[data["position"]] = (name, usd, tokens + int(data.get("tokens") or 0), tries)
    return {
        position: StepUsage(name, usd, tokens, len(tries))
        for position, (name, usd, tokens, tries) in sorted(steps.items())
    }


def caps(start_budget: Budget | None, events: list[EventRecord]) -> Budget | None:
    """A run's budget now: the last raise in its journal, else the one it started with;
    ``CorruptJournal`` naming the run for a raise that cannot be read."""
    for event in reversed(events):
        if event.kind == BUDGET_RAISED:
            return _budget(stored(event), event.run_id, "a budget.raised event") or start_budget
    return start_budget


def start_budget(input_data: Any, run_id: str) -> Budget | None:
    """The budget a run was started with, from its stored input; ``CorruptJournal``
    naming the run for one that cannot be read."""
    if not isinstance(input_data, dict):
        return None
    return _budget(input_data.get("budget"), run_id, "its input's budget")


def _budget(data: Any, run_id: str, where: str) -> Budget | None:
    try:
        return Budget.from_dict(data)
    except (ValueError, TypeError) as error:
        raise CorruptJournal(
            f"the budget of run {run_id!r} cannot be read ({where}: {error}); correct it"
            " or restore it from a backup"
        ) from None


def reached(budget: Budget, spend: Spend) -> str | None:
    """The unit whose cap ``spend`` has reached ("usd" or "tokens"), or None."""
    if budget.usd is not None and spend.usd >= budget.usd - SPEND_TOLERANCE:
        return "usd"
    if budget.tokens is not None and spend.tokens >= budget.tokens:
        return "tokens"
    return None
