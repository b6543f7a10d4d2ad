"""What the group-commit writers of both backends share: a batch's outcomes.

A batch commits many jobs at once; each job's outcome is ``Ok(value)`` or the
exception it ended with, and settling the batch hands each to its caller's
future and marks its ``WriteChain`` settled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from durable.store.ports import WriteChain

Entry = Sequence[Any]
"""A queued job as each writer keeps it: a tuple whose items 1 and 2 are its caller's
future (None when nobody waits) and its chain."""


class Ok:
    """A job's value (so that a job may return an exception as a value)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def fail_all(chains: Iterable[WriteChain | None], error: Exception) -> list[Any]:
    """Outcomes of a batch that could not be committed; its chains stop here."""
    outcomes: list[Any] = []
    for chain in chains:
        if chain is not None and chain.error is None:
            chain.error = error
        outcomes.append(error)
    return outcomes


def settle(batch: Iterable[Entry], outcomes: list[Any]) -> None:
    """Hand every job's outcome to whoever waits for it."""
    for entry, outcome in zip(batch, outcomes, strict=True):
        future, chain = entry[1], entry[2]
        if chain is not None:
            chain.unsettled -= 1
        if future is None or future.done():
            continue
        if isinstance(outcome, Ok):
            future.set_result(outcome.value)
        else:
            future.set_exception(outcome)
