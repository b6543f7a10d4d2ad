"""``RunBudget``: a live run's budget side, the spend its steps charge and the check
made before each of its calls (``durable/workflow/budget.py`` asks it)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

from durable._base.clock import Clock
from durable._base.codec import loads
from durable.errors import CorruptJournal, NonDeterminismError
from durable.journal.kinds import BUDGET_CHARGED
from durable.journal.records import RunRecord
from durable.observe.telemetry import Telemetry
from durable.runtime.budgets import Holder, Ledger, held, holders
from durable.store.ports import Store


class BudgetedRun(Protocol):
    """What the budget side reads of its live run."""

    store: Store
    clock: Clock
    telemetry: Telemetry
    record: RunRecord
    workflow_name: str
    retired: bool

    def check_running(self) -> None: ...

    def fatal(self, error: NonDeterminismError | CorruptJournal) -> None: ...

    def unpositioned(
        self, kind: str, items: Sequence[tuple[str, str, float]]
    ) -> asyncio.Future[list[int]]:
        """Write events without a position in the run's write chain, not awaited."""
        ...


class RunBudget:
    """Charges written as they are made (from a sync step's thread too), and the check
    of every budget over the run, counting its own charges once they are committed."""

    def __init__(self, run: BudgetedRun) -> None:
        # Not a reference the run would hold back: a finished run is freed at once,
        # without the cycle collector.
        self._run_ref = weakref.ref(run)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._charged: asyncio.Future[list[int]] | None = None  # the last charge written
        self._holders: list[Holder] | None = None
        self._ledger = Ledger()

    def charge(self, step: str, record: str) -> None:
        run = self._run_ref()
        if run is None:
            return
        if self._loop_thread != threading.get_ident():  # a sync step's worker thread
            context = contextvars.copy_context()  # the step's span, for its attributes
            with contextlib.suppress(RuntimeError):  # the loop closed: the run stopped here
                self._loop.call_soon_threadsafe(self.charge, step, record, context=context)
            return
        if run.retired:
            return  # this copy lost the run: its steps' spend is no longer its to write
        self._charged = run.unpositioned(BUDGET_CHARGED, [(step, record, run.clock.now())])
        self._charged.add_done_callback(_seen)
        run.telemetry.charged(run.workflow_name, loads(record))

    async def over_budget(self) -> dict[str, Any] | None:
        run = self._run_ref()
        assert run is not None  # its own workflow asks, while it runs
        try:
            if self._holders is None:
                self._holders = await holders(run.store, run.record)
            if not self._holders:
                return None  # no budget over the run: nothing to wait for or read
            if self._charged is not None:  # the run's own charges count: wait for them
                await asyncio.wait([self._charged])
            run.check_running()
            return await held(run.store, self._holders, self._ledger)
        except CorruptJournal as error:  # a budget over the run cannot be read
            run.fatal(error)
            raise


def _seen(written: asyncio.Future[list[int]]) -> None:
    """A charge's write failed: the chain refuses the run's later writes, which stops it."""
    if not written.cancelled():
        written.exception()
