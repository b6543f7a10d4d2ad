"""Leases: which runs this runtime owns, claiming free ones, renewing, taking over, letting go.

A runtime holds one lease (a row in ``owners``) and renews it every third of
``lease_seconds``. Claiming takes free runs of the workflows it executes, as
many as it has room for and no more than its fair share; runs of an owner
whose lease lapsed (or that is provably a dead process, ``liveness.py``) are
free. Every claim of a run begins a new ownership epoch, so a copy of the run
still running anywhere under an older claim writes nothing more. A run let go
after a database fault is claimed again with backoff.

As it opens, a runtime takes its own runs back at once and free runs only one
``poll_interval`` later: runtimes opened together have registered their leases by then
and split the free runs between them (as a consumer group delays its first
rebalance for members that start together).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from durable._base.aio import TaskSet
from durable._base.clock import wall_time
from durable.journal.records import TERMINAL, RunRecord
from durable.observe.telemetry import Telemetry
from durable.runtime.changes import Changes
from durable.runtime.lifecycle import Lifecycle
from durable.runtime.live_run import LiveRun
from durable.runtime.liveness import is_dead
from durable.runtime.options import RuntimeOptions
from durable.runtime.residency import Residency
from durable.store.ports import Store
from durable.workflow.decorators import registered
from durable.workflow.logs import log


class Ownership:
    """The runtime's lease and the claims made under it."""

    def __init__(
        self,
        store: Store,
        options: RuntimeOptions,
        lifecycle: Lifecycle,
        residency: Residency,
        changes: Changes,
        telemetry: Telemetry,
        admit_soon: Callable[[], None],
    ) -> None:
        self.store = store
        self.options = options
        self.lifecycle = lifecycle
        self.residency = residency
        self.changes = changes
        self.telemetry = telemetry
        self.admit_soon = admit_soon
        """Admit queued runs (a dead runtime's runs may be back in their queues)."""
        self.next_renewal = 0.0
        self._reported: set[str] = set()
        self._tasks = TaskSet()
        self._reclaiming: dict[str | None, bool] = {}  # in flight: asked for again
        self._joining: asyncio.TimerHandle | None = None
        self._claiming = asyncio.Lock()  # one claim and its resumption at a time

    @property
    def owner(self) -> str:
        return self.options.identity

    @property
    def lease_seconds(self) -> float:
        return self.options.lease_seconds

    async def open(self) -> None:
        """Take this runtime's own runs back at once (a runtime reopened under its
        identity), and the free ones once runtimes opened together have joined."""
        await self.claim(include_own=True, at_open=True, take_free=False)
        window = self.options.poll_interval
        self._joining = asyncio.get_running_loop().call_later(window, self._join)

    def _join(self) -> None:
        self._joining = None
        if self.lifecycle.is_open:
            self._tasks.spawn(self._claim_free())

    async def _claim_free(self) -> None:
        try:
            await self.claim(include_own=False, at_open=True)
        except Exception as exc:  # the next renewal or news claims again
            log.warning("could not claim free runs yet (%s); claiming again soon", exc)

    def stop(self) -> None:
        if self._joining is not None:
            self._joining.cancel()
            self._joining = None

    async def claim(
        self,
        *,
        include_own: bool,
        run_ids: Sequence[str] | None = None,
        at_open: bool = False,
        take_free: bool = True,
    ) -> None:
        """Take free runs, as many as this runtime has room for (it claims again while
        a whole batch came back), and start or park them.

        A run whose owner died (another runtime, or this identity's last life: the
        claim ``at_open``) is a recovery, counted against ``max_recoveries``. A claim
        begins a new epoch of each run it takes, so runs running here are never taken
        again by this runtime; a run that runs here and comes back from a claim was
        claimed elsewhere since, and its copy here, refused, is replaced.
        """
        if not self.options.recover or (not include_own and self._joining is not None):
            return  # free runs wait for the runtimes opening with this one (open)
        async with self._claiming:  # a claim's skip list must see the runs the one before started
            await self._claim(include_own, run_ids, at_open, take_free)

    async def _claim(
        self, include_own: bool, run_ids: Sequence[str] | None, at_open: bool, take_free: bool
    ) -> None:
        dead = [owner for owner in await self.store.owners() if is_dead(owner)]
        while True:
            loaded = self.residency.loaded
            limit = max(1, self.options.max_in_memory_runs - len(loaded)) if take_free else 0
            wanted = loaded if run_ids is None else run_ids
            skip = [run_id for run_id in wanted if run_id in loaded] if include_own else []
            records = await self._claim_batch(include_own, run_ids, limit, dead, skip)
            taken = sum(1 for record in records if record.owner != self.owner)
            await self._replace_stale_copies(records)
            await self._resume(records, at_open)
            if taken < limit or limit == 0 or not self.lifecycle.is_open:
                if run_ids is None:  # a dead runtime's runs may be back in their queues
                    self.admit_soon()
                return
            include_own = False

    async def _claim_batch(
        self,
        include_own: bool,
        run_ids: Sequence[str] | None,
        limit: int,
        dead: list[str],
        skip: list[str],
    ) -> list[RunRecord]:
        now = wall_time()
        return await self.store.claim(
            self.owner,
            now + self.lease_seconds,
            now,
            limit=limit,
            dead_owners=dead,
            run_ids=run_ids,
            workflows=self.options.executes(),
            include_own=include_own,
            skip=skip,
        )

    async def _resume(self, records: list[RunRecord], at_open: bool) -> None:
        """Start or park claimed runs. A run whose owner died (another runtime, or this
        identity's last life: the claim ``at_open``) is a recovery. Loaded and started
        a slice at a time: while one slice's journals are read, the runs started before
        it move on (and many finish), so fewer are in memory at once."""
        recovering = {
            record.run_id
            for record in records
            if record.owner is not None and (at_open or record.owner != self.owner)
        }
        if recovering:
            self.telemetry.took_over(len(recovering))
        for start in range(0, len(records), _RECOVERY_SLICE):
            await self.residency.resume(records[start : start + _RECOVERY_SLICE], recovering)

    async def _replace_stale_copies(self, records: Sequence[RunRecord]) -> None:
        """A run that runs here and came back from a claim was claimed elsewhere since:
        its copy here is refused from now on; it stops before the new one starts."""
        residency = self.residency
        stale = [residency.loaded[r.run_id] for r in records if r.run_id in residency.loaded]
        for copy in stale:
            residency.forget(copy)
            copy.retire()
        await asyncio.gather(*(copy.task for copy in stale if copy.task), return_exceptions=True)

    def reclaim_later(self, run_id: str | None) -> None:
        """Claim a run again (None: every run of this runtime's not running here), with
        backoff, until the store answers (see LiveRun._let_go). Asked for while one is
        under way, it goes once more after that one."""
        if run_id in self._reclaiming:
            self._reclaiming[run_id] = True
            return
        self._reclaiming[run_id] = False
        self._tasks.spawn(self._reclaim(run_id))

    async def _reclaim(self, run_id: str | None) -> None:
        try:
            while True:
                await self._claim_again(run_id)
                if not self._reclaiming[run_id]:
                    return
                self._reclaiming[run_id] = False
        finally:
            del self._reclaiming[run_id]

    async def _claim_again(self, run_id: str | None) -> None:
        delay = 0.05
        while self.lifecycle.is_open and (run_id is None or run_id not in self.residency.loaded):
            await asyncio.sleep(delay)
            try:
                await self.claim(include_own=True, run_ids=None if run_id is None else [run_id])
            except Exception as exc:
                what = "this runtime's runs" if run_id is None else f"run {run_id}"
                log.warning("could not claim %s again yet (%s); retrying", what, exc)
                delay = min(delay * 2, 2.0)
            else:
                self.changes.notify()  # result() waiters look again
                return

    def seconds_to_renewal(self) -> float:
        return max(0.0, self.next_renewal - wall_time())

    async def renew_if_due(self) -> None:
        """Renew the lease when a third of it has passed; if it had lapsed, stop the runs
        another runtime took meanwhile. Then claim what is free."""
        if wall_time() < self.next_renewal:
            return
        self.schedule_renewal()
        if not self.options.recover:
            return  # a runtime that runs nothing holds no lease: it is nobody's peer
        before = dict(self.residency.loaded)
        now = wall_time()
        held = await self.store.renew(self.owner, now + self.lease_seconds, now)
        if held is not None:  # our lease had lapsed: another runtime may have taken runs
            await self._drop_lost(before, held)
        await self.claim(include_own=False)

    def schedule_renewal(self) -> None:
        self.next_renewal = wall_time() + self.lease_seconds / 3

    async def _drop_lost(self, before: dict[str, LiveRun], held: set[str]) -> None:
        """Stop running runs another runtime took over (our lease expired while we stalled).

        ``before`` is what ran here before the renewal; a run missing from
        ``held`` may also just have finished, so the journal confirms the loss.
        """
        residency = self.residency
        for run_id, live in before.items():
            if run_id in held or residency.loaded.get(run_id) is not live or live.ended:
                continue
            record = await self.store.get_run(run_id)
            if record is None or record.status in TERMINAL or record.owner == self.owner:
                continue
            log.warning("run %s was taken over by %s after our lease expired", run_id, record.owner)
            residency.forget(live)
            live.retire()

    async def report_unregistered(self, unfinished: list[RunRecord]) -> None:
        for record in unfinished:
            key = f"{record.workflow}@{record.version}"
            if registered(record.workflow, record.version) is None and key not in self._reported:
                self._reported.add(key)
                log.warning(
                    "runs of workflow %r version %r are unfinished but not registered in this"
                    " process; they are left untouched (import the module that defines it)",
                    record.workflow,
                    record.version,
                )

    def owned_by_live_runtime(self, run: RunRecord) -> bool:
        """Whether a run's owner still holds its lease (for ``check``)."""
        return (
            run.owner is not None
            and (run.lease_until or 0) >= wall_time()
            and not is_dead(run.owner)
        )


_RECOVERY_SLICE = 500
