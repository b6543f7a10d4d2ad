"""``Runtime``: open a journal, start, read, answer, cancel, resume.

One runtime owns one store. Opening it claims and resumes every unfinished
run this process has the workflow for (``ownership.py``; runs parked at a
sleep or a wait stay unloaded until due, ``residency.py``), then follows the
store's change feed for what other processes write (``changes.py``). The
runtime is a facade: its parts do the work, each built with what it uses.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from typing_extensions import ParamSpec

from durable._base.clock import Clock, SystemClock, time_skipping
from durable._base.ids import check_name
from durable.errors import DurableError
from durable.journal.budget import Budget, Usage
from durable.journal.info import PendingWait, RunInfo, RunStatus
from durable.journal.streams import StreamItem
from durable.observe.metrics import Metrics
from durable.observe.telemetry import Telemetry
from durable.runtime.admission import Admission
from durable.runtime.answers import Answers
from durable.runtime.budgets import usage as budget_usage
from durable.runtime.changes import Changes, FeedReader
from durable.runtime.check import CheckReport, check
from durable.runtime.control import Control
from durable.runtime.handle import RunHandle
from durable.runtime.lifecycle import Lifecycle
from durable.runtime.liveness import runtime_name
from durable.runtime.options import RuntimeOptions, check_path_and_clock, workflow_tuple
from durable.runtime.ownership import Ownership
from durable.runtime.reading import Reading, RunSearch
from durable.runtime.residency import Residency
from durable.runtime.results import Results
from durable.runtime.schedules import Schedules
from durable.runtime.starting import Starter
from durable.runtime.state import read_state, wait_state
from durable.runtime.streams import LOOK_EVERY, check_cursor, read_stream
from durable.runtime.supervision import Parts, Supervision
from durable.runtime.timers import Timers
from durable.store import open_store
from durable.store.ports import Store
from durable.workflow import current as _current
from durable.workflow.decorators import Workflow
from durable.workflow.logs import log
from durable.workflow.queues import Queue, QueueStatus, ScheduleInfo

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

P = ParamSpec("P")
R = TypeVar("R")


class Runtime:
    """Runs workflows durably on one SQLite file or one PostgreSQL database.

    ``async with Runtime("app.db") as rt`` (or ``Runtime("postgresql://...")``)
    opens the journal and resumes every unfinished run. ``workflows`` limits
    which workflows this runtime executes (default: every registered one).
    With ``recover=False`` it runs no workflow at all: it reads, answers,
    cancels, and starts runs for a worker to execute (the CLI opens the
    journal this way). ``durability="full"`` makes each journaled step survive
    power loss; ``"normal"`` survives process crashes only. ``identity`` names
    this runtime as an owner of runs: a runtime that reopens with the same
    identity takes its runs back at once, others wait ``lease_seconds`` for a
    lease to expire (or less, when the owner is provably a dead process of this
    machine's process table). Free runs are taken a moment after opening, so that
    runtimes opened together share them.
    ``always_replay`` rebuilds every run from its journal each time it
    suspends, to flush out non-determinism in tests. ``writer`` chooses where
    journal commits run: ``"loop"`` (on the event loop thread, no thread hop;
    the default with ``durability="normal"``) or ``"thread"`` (a writer
    thread, so an fsync never stalls the loop; the default with ``"full"``).
    Past ``max_in_memory_runs`` runs in memory, a run that suspends is
    unloaded and rebuilt by replay when its timer fires or its event arrives.
    A value (input, step result, event, output) over ``max_value_bytes`` of
    JSON is refused with ``SerializationError`` (None: no limit). A run
    recovered ``max_recoveries`` times in a row without progress (its process
    died each time it ran) is failed with ``RecoveryLimit``. With
    ``opentelemetry-api`` installed, runs and step attempts are spans of
    ``tracer_provider`` (default: the global one the application configures).

    The runtime is a facade over its parts, each with one job and given what it
    uses (``_wire``): ``store`` (the journal), ``options`` (the settings above),
    ``ownership`` (leases and claims), ``residency`` (which runs are in memory),
    ``changes`` and ``feed`` (news of runs, and following what others write),
    ``starter``, ``admission`` (queues), ``cron``, ``answers`` (questions, answers
    and events sent to runs), ``control`` (cancel, deadlines, resume, re-run),
    ``results`` (awaiting runs' ends), ``reading`` and ``timers``. They are
    attributes for tools and tests to look at, not a stable API.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "durable.db",
        *,
        clock: Clock | None = None,
        recover: bool = True,
        durability: str = "full",
        identity: str | None = None,
        lease_seconds: float = 15.0,
        poll_interval: float = 0.25,
        always_replay: bool = False,
        writer: str | None = None,
        max_in_memory_runs: int = 10_000,
        max_value_bytes: int | None = 10_000_000,
        max_recoveries: int = 10,
        store: Store | None = None,
        workflows: Sequence[Workflow[Any, Any]] | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        check_path_and_clock(path, clock)
        self.path = path
        self.clock: Clock = clock or SystemClock()
        self.options = RuntimeOptions(
            identity=runtime_name(uuid.uuid4().hex[:8]) if identity is None else identity,
            recover=recover,
            durability=durability,
            lease_seconds=lease_seconds,
            poll_interval=poll_interval,
            always_replay=always_replay,
            writer=writer,
            max_in_memory_runs=max_in_memory_runs,
            max_value_bytes=max_value_bytes,
            max_recoveries=max_recoveries,
            workflows=workflow_tuple(workflows),
            tracer_provider=tracer_provider,
        )
        self._reopenable = store is None
        self.store: Store = store or open_store(path, durability, writer, poll_interval)
        self._wire(self.options)
        self._token: contextvars.Token[_current.Starts | None] | None = None
        self._detach_clock: Callable[[], None] | None = None

    def _wire(self, opts: RuntimeOptions) -> None:
        """Build the parts, each given the collaborators it uses; the live runs and the
        parts that need each other both ways meet in ``supervision``."""
        store, clock, life = self.store, self.clock, Lifecycle()
        self.lifecycle = life
        self.timers = timers = Timers(clock)
        self.telemetry = tel = Telemetry(opts.tracer_provider)
        self.changes = changes = Changes()
        sup = self.supervision = Supervision(store, clock, timers, tel, opts, changes)
        self.reading = reading = Reading(store, clock, life, changes)
        self.residency = res = Residency(store, clock, timers, opts, life, changes, sup)
        self.admission = adm = Admission(store, clock, timers, opts, life, res, sup.reclaim_all)
        self.ownership = own = Ownership(store, opts, life, res, changes, tel, adm.admit_soon)
        self.feed = FeedReader(store, opts.poll_interval, changes, own, res)
        self.starter = Starter(store, clock, opts, life, tel, res, adm.admit_soon)
        self.cron = Schedules(store, clock, timers, opts, life, self.starter)
        self.control = Control(
            store, clock, timers, opts.poll_interval, life, reading, res, changes, own, adm
        )
        self.answers = Answers(reading, res, opts)
        self.results = Results(reading, res, opts)
        sup.connect(Parts(res, own, adm, self.starter, self.control, self.results, self.answers))

    @property
    def owner(self) -> str:
        """The name this runtime owns runs under (``identity``)."""
        return self.options.identity

    @property
    def settings(self) -> dict[str, Any] | None:
        """The keyword arguments that open a runtime alike on ``path`` (``durable.testing.crash``);
        None for one given a ready-made store, which cannot be reopened."""
        if not self._reopenable:
            return None
        return {"clock": self.clock, **self.options.keywords()}

    @property
    def is_open(self) -> bool:
        return self.lifecycle.is_open

    @property
    def loaded_runs(self) -> frozenset[str]:
        """The runs executing in this runtime's memory now."""
        return frozenset(self.residency.loaded)

    @property
    def unloaded_runs(self) -> frozenset[str]:
        """The runs this runtime holds unloaded, parked until a timer or an event wakes them."""
        return frozenset(self.residency.unloaded)

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the journal, resume unfinished runs, start timers and the poller."""
        if self.lifecycle.is_open:
            raise DurableError("this runtime is already open")
        await self.store.open()
        self.lifecycle.is_open = True
        self.timers.start()
        # A skipping clock skips only while every run of ours is parked.
        self._detach_clock = time_skipping(self.clock).attach(self.residency.parked)
        self._token = _current.runtime.set(self)
        last_seq = await self.store.last_seq()
        await self.ownership.open()
        if self.options.recover:
            await self.ownership.report_unregistered(await self.reading.unfinished())
        self.ownership.schedule_renewal()
        await self.feed.start(last_seq)
        await self.cron.start()

    async def close(self) -> None:
        """Stop every run where it is (left resumable, never failed) and close the journal."""
        stopped = list(self.residency.loaded)
        if await self._stop_runs():
            try:
                # The runs stopped mid-flight are handed back as free, so that whoever
                # takes them next does not count their stop as a crash (max_recoveries).
                await self.store.release(self.owner, stopped)
            except Exception:
                log.exception("could not release this runtime's runs; they wait for lease expiry")
            await self._close_store()

    async def abandon(self) -> None:
        """Stop as a SIGKILL would: runs stop where they are, nothing more is written,
        and this runtime's leases are kept (a runtime with its identity takes them back)."""
        if await self._stop_runs():
            await self._close_store()

    async def _stop_runs(self) -> bool:
        if not self.lifecycle.is_open:
            return False
        self.lifecycle.is_open = False
        self.ownership.stop()
        self.cron.stop()
        await self.feed.stop()
        await self.residency.stop_all()
        return True

    async def _close_store(self) -> None:
        if self._detach_clock is not None:
            self._detach_clock()
            self._detach_clock = None
        await self.timers.stop()
        await self.store.close()
        self.changes.notify(DurableError("the runtime was closed while waiting for a run's result"))
        if self._token is not None:
            # ValueError: closed from another task than the one that opened it.
            with contextlib.suppress(ValueError):
                _current.runtime.reset(self._token)
            self._token = None

    # -- starting and reading runs -------------------------------------------

    async def start(
        self, wf: Workflow[P, R], *args: Any, run_id: str | None = None, **kwargs: Any
    ) -> RunHandle[R]:
        """Start ``wf(*args, **kwargs)`` as a run; ``run_id`` is its idempotency key.

        The same ``run_id`` with the same workflow, version and input returns the
        existing run; with another workflow, version or input it raises
        ``IdempotencyKeyMismatch`` and changes nothing.
        """
        return await self.start_run(wf, args, kwargs, run_id=run_id)

    async def start_run(
        self,
        wf: Workflow[P, R],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        run_id: str | None = None,
        timeout: float | None = None,
        queue: Queue | str | None = None,
        priority: int = 0,
        dedup_key: str | None = None,
        parent_run_id: str | None = None,
        budget: Budget | None = None,
    ) -> RunHandle[R]:
        """``start`` with the workflow's arguments passed as a list and a dict.

        Use it when the workflow has a parameter called ``run_id``. ``timeout``
        (seconds, default the workflow's) gives the run a durable deadline: when it
        passes, the run ends ``failed`` with ``WorkflowTimeout``. ``queue`` (default
        the workflow's) makes the run wait ``queued`` until its queue admits it,
        lowest ``priority`` first, then first come; a ``dedup_key`` that a queued or
        running run of the queue has raises ``DuplicateInQueue``. ``parent_run_id``
        is set by ``ctx.start_child``. ``budget`` (default the workflow's) caps what
        the run and the runs below it may spend before a person says more.
        """
        rid = await self.starter.start(
            wf,
            args,
            kwargs,
            run_id=run_id,
            timeout=timeout,
            queue=queue,
            priority=priority,
            dedup_key=dedup_key,
            parent_run_id=parent_run_id,
            budget=budget,
        )
        return RunHandle(self, rid)

    def handle(self, run_id: str) -> RunHandle[Any]:
        return RunHandle(self, check_name("run_id", run_id))

    async def get_run(self, run_id: str) -> RunInfo:
        return RunInfo.from_record(await self.reading.record(run_id))

    async def list_runs(
        self,
        status: RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        *,
        after: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        parent: str | None = None,
        id_contains: str | None = None,
        id_prefix: str | None = None,
    ) -> list[RunInfo]:
        """Runs, newest first. ``after`` (a run id, the last of the page before) pages
        on; ``since`` and ``until`` (aware datetimes) bound when runs were created;
        ``parent`` keeps the children of that run; ``id_contains`` and ``id_prefix``
        keep the runs whose id holds that text, or begins with it."""
        search = RunSearch(since, until, parent, id_contains, id_prefix)
        return await self.reading.list_runs(status, workflow, limit, after, search)

    async def prune(self, older_than: float | dt.timedelta, *, batch: int = 1000) -> int:
        """Delete runs that ended more than ``older_than`` (seconds or a timedelta) ago,
        with their journals, ``batch`` runs per transaction; returns how many. Never
        an unfinished run."""
        return await self.reading.prune(older_than, batch)

    async def history(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events in journal order (superseded ones flagged), as JSON-ready dicts."""
        return await self.reading.history(run_id)

    async def export(self, run_id: str) -> dict[str, Any]:
        """The history document of a run: format version, the run, its events in order."""
        return await self.reading.export(run_id)

    # -- answers, events, cancellation --------------------------------------

    async def pending_waits(self, run_id: str | None = None) -> list[PendingWait]:
        """Unanswered ``wait_for_user`` questions, oldest first."""
        return await self.answers.pending(run_id)

    async def wait_for_question(self, run_id: str, timeout: float | None = None) -> PendingWait:
        """Wait until the run has an unanswered ``wait_for_user`` and return it (the oldest).

        So a caller can answer a run it just started. ``timeout`` is in real
        seconds: a ``TimeoutError`` naming the run and its status when it
        passes; a run that ends without asking raises ``DurableError``.
        """
        return await self.answers.wait_for_question(run_id, timeout)

    async def respond(self, run_id: str, value: Any, *, wait_id: str | None = None) -> None:
        """Answer the run's pending ``wait_for_user`` (the oldest, or ``wait_id``).

        The answer is journaled before this returns. Approval and choice
        answers must be one of the option ids (``InvalidResponse`` otherwise,
        and nothing is recorded).
        """
        await self.answers.respond(run_id, value, wait_id)

    async def send_event(
        self, run_id: str, name: str, payload: Any = None, *, key: str | None = None
    ) -> None:
        """Deliver an event to the run's ``wait_for_event(name)``; kept in order until then.

        With ``key`` (a webhook's delivery id, say), a second send with the same key
        to the same run delivers nothing: the event is kept once.
        """
        await self.answers.send_event(run_id, name, payload, key)

    async def raise_budget(
        self, run_id: str, *, usd: float | None = None, tokens: int | None = None
    ) -> Usage:
        """Raise the budget that holds the run back (or the nearest over it) to these
        caps, never below what was spent; every run waiting on it goes on. Returns the
        usage of the run that holds that budget (``budget_run_id``), with its new caps.
        ``NoBudget`` when no budget is over the run; ``ValueError`` for a bad amount."""
        return await self.answers.raise_budget(check_name("run_id", run_id), usd, tokens)

    async def usage(self, run_id: str) -> Usage:
        """What the run and the runs below it spent, its own spend by step, and the
        budget that applies to it."""
        self.lifecycle.check_open()
        return await budget_usage(self.store, check_name("run_id", run_id))

    async def cancel(self, run_id: str) -> None:
        """Cancel the run and its unfinished children: they stop at their current await
        and end ``cancelled``."""
        await self.control.cancel(check_name("run_id", run_id))

    async def resume(self, run_id: str) -> RunHandle[Any]:
        """Try a failed run again: one that failed in a step retries from that step (its
        recorded failure superseded, as ``rerun_from`` does); one that failed elsewhere
        replays its journal under the current code (after a fix)."""
        await self.control.resume(run_id)
        return RunHandle(self, run_id)

    async def rerun_from(self, run_id: str, position: int) -> RunHandle[Any]:
        """Re-execute a finished run from ``position``; earlier entries are kept, superseded."""
        await self.control.rerun_from(run_id, position)
        return RunHandle(self, run_id)

    async def queue_status(self, name: Queue | str) -> QueueStatus:
        """How many runs of the queue are queued and running, and its limits (None
        for a queue this process did not declare)."""
        self.lifecycle.check_open()
        name = name if isinstance(name, Queue) else check_name("a queue's name", name)
        return await self.admission.status(name.name if isinstance(name, Queue) else name)

    async def queues(self) -> list[QueueStatus]:
        """``queue_status`` of every queue declared here or with runs in the journal."""
        self.lifecycle.check_open()
        return await self.admission.statuses()

    async def schedules(self) -> list[ScheduleInfo]:
        """The cron schedules seen on this journal, with their next and latest ticks."""
        self.lifecycle.check_open()
        return await self.cron.schedules()

    async def metrics(self) -> Metrics:
        """This runtime's counts of step attempts, run ends and takeovers, with the
        journal's counts of runs and of queued runs: what ``/metrics`` serves."""
        self.lifecycle.check_open()
        return await self.telemetry.metrics(self.store, await self.queues())

    def read_stream(
        self, run_id: str, key: str, *, after: int | None = None
    ) -> AsyncIterator[StreamItem]:
        """The run's stream ``key`` as ``StreamItem``s in order, from any process: those
        written already, then each as it is committed; it ends when the stream is
        closed or the run ends. A ``"retract"`` item voids the values of a step attempt
        that ended without completing. ``after``: resume just past that item's cursor."""
        self.lifecycle.check_open()
        check_name("run_id", run_id)
        check_name("a stream's key", key)
        check_cursor(after)
        look_every = None if self.store.pushes_changes else LOOK_EVERY
        return read_stream(self.reading, run_id, key, after, look_every)

    async def get_state(self, run_id: str) -> dict[str, Any]:
        """The run's ``ctx.state`` as last committed, from any process."""
        return await read_state(self.reading, run_id)

    async def wait_state(self, run_id: str, key: str, timeout: float | None = None) -> Any:
        """Wait until the run has set ``key`` in its ``ctx.state`` and return the value.

        ``timeout`` is in real seconds (``TimeoutError`` naming the run); a run that
        ends without setting it raises ``DurableError``.
        """
        return await wait_state(self.reading, run_id, key, timeout)

    async def check(self, *, unregistered: bool = True) -> CheckReport:
        """What needs a human: interrupted steps, orphaned, unknown, poison and
        diverged runs (every unfinished run is replayed against the code loaded
        now, writing nothing; a deploy gate).

        ``unregistered=False`` skips runs of workflows this process lacks (for
        tools, like the CLI, that import no workflows).
        """
        self.lifecycle.check_open()
        here = self.loaded_runs | self.unloaded_runs
        runs = await self.reading.unfinished()
        owned = self.ownership.owned_by_live_runtime
        return await check(self.store, runs, owned, here, unregistered=unregistered)
