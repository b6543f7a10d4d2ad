"""What the group-commit writers of both backends share: a batch's outcomes.

A batch commits many jobs at once; each job's outcome is ``Ok(value)`` or the
exception it ended with, and settling the batch hands each to its caller's
future and marks its ``WriteChain`` settled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .base import WriteChain

Target = tuple["asyncio.Future[Any] | None", WriteChain | None]
"""Where a job's outcome goes: its caller's future (none when nobody waits) and chain."""


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


def settle(targets: Iterable[Target], outcomes: list[Any]) -> None:
    """Hand every job's outcome to whoever waits for it."""
    for (future, chain), outcome in zip(targets, outcomes, strict=True):
        if chain is not None:
            chain.unsettled -= 1
        if future is None or future.done():
            continue
        if isinstance(outcome, Ok):
            future.set_result(outcome.value)
        else:
            future.set_exception(outcome)
