"""``Runtime`` and ``RunHandle``: start, recover, deliver answers, cancel, lease.

One runtime owns one store. Opening it claims and resumes every unfinished
run this process has the workflow for (runs its journal shows parked at a
sleep or a wait stay unloaded until due); a poller follows the store's change
feed to notice what other processes write (answers, events, cancels, new
runs), and renews this runtime's lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

from typing_extensions import ParamSpec, Self

from . import _current
from ._aio import within
from ._check import CheckReport, build_report
from ._clock import Clock, SystemClock, VirtualClock
from ._codec import canonical, convert, digest, encode, loads, return_hint
from ._info import PendingWait, RunInfo, RunStatus, event_dict, history_document
from ._journal import CANCEL, MESSAGE, RERUN, USER_WAIT_PREFIX, RunJournal
from ._run import LiveRun
from ._store import open_store
from ._store.base import (
    TERMINAL,
    EventRecord,
    Expect,
    LeaseLost,
    NewEvent,
    RunEnded,
    RunRecord,
    RunUpdate,
    Store,
    StoreUnavailable,
    WaitAnswered,
)
from ._timers import Timers
from ._workflow import Workflow, registered, registry_keys
from .errors import (
    CorruptJournal,
    DurableError,
    IdempotencyKeyMismatch,
    InvalidResponse,
    NoPendingWait,
    RunNotFound,
    SerializationError,
    WorkflowCancelled,
    WorkflowFailed,
)

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("durable")

_HOST = socket.gethostname()


class RunHandle(Generic[R]):
    """A reference to one run: await its result, read its status, cancel it."""

    def __init__(self, runtime: Runtime, run_id: str) -> None:
        self.runtime = runtime
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id!r}>"

    async def result(self, timeout: float | None = None) -> R:
        """The run's output; raises ``WorkflowFailed`` or ``WorkflowCancelled``.

        ``timeout`` is in real seconds (``TimeoutError`` when it passes).
        """
        if timeout is None:
            result: R = await self.runtime._result(self.run_id)
        else:
            result = await within(self.runtime._result(self.run_id), timeout)
        return result

    async def status(self) -> RunStatus:
        return (await self.runtime.get_run(self.run_id)).status

    async def cancel(self) -> None:
        await self.runtime.cancel(self.run_id)


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
    lease to expire (or less, when the owner is a dead process on this host).
    ``always_replay`` rebuilds every run from its journal each time it
    suspends, to flush out non-determinism in tests. ``writer`` chooses where
    journal commits run: ``"loop"`` (on the event loop thread, no thread hop;
    the default with ``durability="normal"``) or ``"thread"`` (a writer
    thread, so an fsync never stalls the loop; the default with ``"full"``).
    Past ``max_in_memory_runs`` runs in memory, a run that suspends is
    unloaded and rebuilt by replay when its timer fires or its event arrives.
    A value (input, step result, event, output) over ``max_value_bytes`` of
    JSON is refused with ``SerializationError`` (None: no limit).
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
        store: Store | None = None,
        workflows: Sequence[Workflow[Any, Any]] | None = None,
    ) -> None:
        self.path = path
        self.clock: Clock = clock or SystemClock()
        self.durability = durability
        self.store: Store = store or open_store(path, durability, writer, poll_interval)
        self.workflows = None if workflows is None else list(workflows)
        self.timers = Timers(self.clock)
        self.recover = recover
        self.owner = identity or f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.always_replay = always_replay
        self.max_in_memory_runs = max_in_memory_runs
        self.max_value_bytes = max_value_bytes
        self._wall = SystemClock()
        self._dormant: dict[str, _Dormant] = {}
        self._waking: set[str] = set()
        self._live: dict[str, LiveRun] = {}
        self._open = False
        self._poller: asyncio.Task[None] | None = None
        self._token: contextvars.Token[Runtime | None] | None = None
        self._changed: set[asyncio.Future[None]] = set()
        self._last_seq = 0
        self._next_lease_renewal = 0.0
        self._reported: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

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
        if self._open:
            raise DurableError("this runtime is already open")
        await self.store.open()
        self._open = True
        self.timers.start()
        self._last_seq = await self.store.last_seq()
        self._token = _current.runtime.set(self)
        await self._claim(include_own=True)
        if self.recover:
            await self._report_unregistered()
        self._next_lease_renewal = self._wall.now() + self.lease_seconds / 3
        self._poller = asyncio.create_task(self._poll(), name="durable-poller")

    async def close(self) -> None:
        """Stop every run where it is (left resumable, never failed) and close the journal."""
        if await self._stop_runs():
            try:
                await self.store.release(self.owner)
            except Exception:
                log.exception("could not release this runtime's runs; they wait for lease expiry")
            await self._close_store()

    async def abandon(self) -> None:
        """Stop as a SIGKILL would: runs stop where they are, nothing more is written,
        and this runtime's leases are kept (a runtime with its identity takes them back)."""
        if await self._stop_runs():
            await self._close_store()

    async def _stop_runs(self) -> bool:
        if not self._open:
            return False
        self._open = False
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        runs = list(self._live.values())
        for live in runs:
            live.retire()
        await asyncio.gather(*(live.task for live in runs if live.task), return_exceptions=True)
        self._live.clear()
        self._dormant.clear()
        return True

    async def _close_store(self) -> None:
        await self.timers.stop()
        await self.store.close()
        self._notify(DurableError("the runtime was closed while waiting for a run's result"))
        if self._token is not None:
            # ValueError: closed from another task than the one that opened it.
            with contextlib.suppress(ValueError):
                _current.runtime.reset(self._token)
            self._token = None

    def _check_open(self) -> None:
        if not self._open:
            raise DurableError(
                "the runtime is not open; use it inside `async with durable.Runtime(...) as rt:`"
            )

    # -- starting and reading runs -------------------------------------------

    async def start(
        self, wf: Workflow[P, R], *args: Any, run_id: str | None = None, **kwargs: Any
    ) -> RunHandle[R]:
        """Start ``wf(*args, **kwargs)`` as a run; ``run_id`` is its idempotency key.

        The same ``run_id`` with the same workflow and input returns the
        existing run; with another workflow or input it raises
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
    ) -> RunHandle[R]:
        """``start`` with the workflow's arguments passed as a list and a dict.

        Use it when the workflow has a parameter called ``run_id``.
        """
        self._check_open()
        if not isinstance(wf, Workflow):
            raise TypeError(
                f"{getattr(wf, '__qualname__', wf)!r} is not a workflow; decorate it with"
                " @durable.workflow before starting it"
            )
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
        try:
            input_text = encode({"args": list(args), "kwargs": kwargs}, self.max_value_bytes)
            input_digest = digest(canonical({"workflow": wf.name, "args": args, "kwargs": kwargs}))
        except SerializationError as exc:
            raise SerializationError(
                f"the arguments of workflow {wf.name!r} cannot be stored: {exc.message}"
            ) from None
        rid = run_id or new_run_id()
        now = self.clock.now()
        # A runtime that does not run this workflow (recover=False, or not among its
        # workflows) leaves new runs unowned for a worker that does.
        executes = self.recover and self._executable(wf.name, wf.version) is wf
        record = RunRecord(
            run_id=rid,
            workflow=wf.name,
            version=wf.version,
            # Runs this runtime executes start at once: recorded running, saving an update.
            status=(RunStatus.RUNNING if executes else RunStatus.PENDING).value,
            input=input_text,
            input_digest=input_digest,
            output=None,
            error=None,
            owner=self.owner if executes else None,
            lease_until=self._wall.now() + self.lease_seconds if executes else None,
            created_at=now,
            updated_at=now,
        )
        if run_id is None and executes:
            # A new id cannot exist yet, so the run starts at once: its row is queued
            # in the run's own write chain, ahead of its first write, and the two
            # share a commit. If the row cannot be written, neither is anything else.
            live = self._launch(record, wf, RunJournal([]))
            await self.store.create_run(record, chain=live.writes)
            return RunHandle(self, rid)
        stored, created = await self.store.create_run(record)
        if stored.workflow != wf.name or stored.input_digest != input_digest:
            raise IdempotencyKeyMismatch(rid, stored.input_digest, input_digest)
        if created and executes:
            self._launch(stored, wf, RunJournal([]))
        return RunHandle(self, rid)

    def handle(self, run_id: str) -> RunHandle[Any]:
        return RunHandle(self, run_id)

    async def get_run(self, run_id: str) -> RunInfo:
        return RunInfo.from_record(await self._record(run_id))

    async def list_runs(
        self,
        status: RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
    ) -> list[RunInfo]:
        self._check_open()
        status_text = None if status is None else RunStatus(status).value
        records = await self.store.list_runs(status_text, workflow, limit=limit)
        return [RunInfo.from_record(record) for record in records]

    async def history(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events in journal order (superseded ones flagged), as JSON-ready dicts."""
        await self._record(run_id)
        return [event_dict(event) for event in await self._events(run_id)]

    async def export(self, run_id: str) -> dict[str, Any]:
        """The history document of a run: format version, the run, its events in order."""
        record = await self._record(run_id)
        return history_document(record, await self._events(run_id))

    async def _events(self, run_id: str) -> list[EventRecord]:
        return (await self.store.load_events([run_id]))[run_id]

    async def _record(self, run_id: str) -> RunRecord:
        self._check_open()
        record = await self.store.get_run(run_id)
        if record is None:
            raise RunNotFound(run_id)
        return record

    async def _result(self, run_id: str) -> Any:
        while True:
            live = self._live.get(run_id)
            if live is not None and not live.retired:
                final = await live.wait_ended()
                if final is not None:
                    return self._outcome(final)
            # Not live here, or that incarnation was retired: ask the journal, await changes.
            changed = self._change_future()
            record = await self._record(run_id)
            if record.status in TERMINAL:
                changed.cancel()
                self._changed.discard(changed)
                return self._outcome(record)
            await changed

    def _outcome(self, record: RunRecord) -> Any:
        if record.status == RunStatus.CANCELLED:
            raise WorkflowCancelled(record.run_id)
        if record.status == RunStatus.FAILED:
            raise WorkflowFailed(record.run_id, loads(record.error or "{}"))
        wf = registered(record.workflow, record.version)
        hint = return_hint(wf.fn) if wf is not None else Any
        return convert(loads(record.output or "null"), hint)

    # -- answers, events, cancellation --------------------------------------

    async def pending_waits(self, run_id: str | None = None) -> list[PendingWait]:
        """Unanswered ``wait_for_user`` questions, oldest first."""
        self._check_open()
        if run_id is not None:
            await self._record(run_id)
            run_ids = [run_id]
        else:
            run_ids = [record.run_id for record in await self._unfinished()]
        journals = await self.store.load_events(run_ids)
        waits = [
            PendingWait.from_event(event)
            for events in journals.values()
            for event in RunJournal(events).pending_user_waits()
        ]
        return sorted(waits, key=lambda wait: wait.created_at)

    async def respond(self, run_id: str, value: Any, *, wait_id: str | None = None) -> None:
        """Answer the run's pending ``wait_for_user`` (the oldest, or ``wait_id``).

        The answer is journaled before this returns. Approval and choice
        answers must be one of the option ids (``InvalidResponse`` otherwise,
        and nothing is recorded).
        """
        waits = [w for w in await self.pending_waits(run_id) if wait_id in (None, w.wait_id)]
        if not waits:
            which = f" with wait_id {wait_id!r}" if wait_id is not None else ""
            raise NoPendingWait(
                f"run {run_id!r} has no unanswered wait_for_user{which};"
                " rt.pending_waits() lists the questions waiting for an answer"
            )
        wait = waits[0]
        if wait.input_type in ("approval", "choice"):
            ids = [option["id"] for option in wait.options or []]
            if value not in ids:
                raise InvalidResponse(
                    f"{value!r} is not an answer to {wait.question!r}; answer one of the"
                    f" option ids {ids}"
                )
        try:
            await self._send(run_id, wait.wait_id, value, Expect(pending_wait=wait.wait_id))
        except (RunEnded, WaitAnswered):
            raise NoPendingWait(
                f"wait {wait.wait_id!r} of run {run_id!r} was answered already"
            ) from None

    async def send_event(self, run_id: str, name: str, payload: Any = None) -> None:
        """Deliver an event to the run's ``wait_for_event(name)``; kept in order until then."""
        if name.startswith(USER_WAIT_PREFIX):
            raise ValueError(f"event names starting with {USER_WAIT_PREFIX!r} are reserved")
        try:
            await self._send(run_id, name, payload, Expect())
        except RunEnded as ended:
            raise DurableError(
                f"run {run_id!r} is {ended.status}; the event {name!r} was not stored"
            ) from None

    async def _send(self, run_id: str, name: str, value: Any, expect: Expect) -> None:
        self._check_open()
        text = encode(value, self.max_value_bytes)
        event = NewEvent(run_id, None, MESSAGE, name, text, self.clock.now())
        (seq,) = await self.store.append(run_id, [event], expect=expect)
        self._deliver(EventRecord(seq, run_id, None, MESSAGE, name, text, event.created_at))

    def _deliver(self, message: EventRecord) -> None:
        live = self._live.get(message.run_id)
        if live is not None:
            live.deliver(message)
        dormant = self._dormant.get(message.run_id)
        if dormant is not None and message.name in dormant.messages:
            self._wake(message.run_id)

    async def cancel(self, run_id: str) -> None:
        """Cancel the run: it stops at its current await and ends ``cancelled``."""
        self._check_open()
        now = self.clock.now()
        event = NewEvent(run_id, None, CANCEL, "cancel", "{}", now)
        update = RunUpdate(now, status=RunStatus.CANCELLED.value)
        try:
            await self.store.append(run_id, [event], update, expect=Expect())
        except RunEnded as ended:
            raise DurableError(
                f"run {run_id!r} already ended {ended.status}; nothing to cancel"
            ) from None
        self._forget_cancelled(run_id)
        self._notify()

    def _forget_cancelled(self, run_id: str) -> None:
        live = self._live.get(run_id)
        if live is not None:
            live.cancel()
        self._drop_dormant(run_id)

    def _drop_dormant(self, run_id: str) -> bool:
        """Forget an unloaded run and cancel its timers; False if it was not unloaded."""
        dormant = self._dormant.pop(run_id, None)
        if dormant is None:
            return False
        for timer in dormant.timers:
            self.timers.cancel(timer)
        return True

    async def resume(self, run_id: str) -> RunHandle[Any]:
        """Run a failed run again on its journal (after fixing the code)."""
        record = await self._record(run_id)
        if record.status != RunStatus.FAILED:
            raise DurableError(
                f"run {run_id!r} is {record.status}; only a failed run can be resumed"
                " (rt.rerun_from re-executes a finished run from a position)"
            )
        update = RunUpdate(
            self.clock.now(),
            status="pending",
            reset_result=True,
            release=True,
            only_if_active=False,
        )
        await self.store.append(run_id, [], update)
        await self._claim(include_own=True, run_ids=[run_id])
        return RunHandle(self, run_id)

    async def rerun_from(self, run_id: str, position: int) -> RunHandle[Any]:
        """Re-execute a finished run from ``position``; earlier entries are kept, superseded."""
        record = await self._record(run_id)
        if record.status not in (RunStatus.COMPLETED, RunStatus.FAILED):
            raise DurableError(
                f"run {run_id!r} is {record.status}; rerun_from needs a completed or failed run"
            )
        if position < 0:
            raise ValueError(f"position must be >= 0, got {position}")
        now = self.clock.now()
        marker = NewEvent(run_id, None, RERUN, "rerun", encode({"position": position}), now)
        update = RunUpdate(
            now, status="pending", reset_result=True, release=True, only_if_active=False
        )
        await self.store.supersede(run_id, position, update, [marker])
        await self._claim(include_own=True, run_ids=[run_id])
        return RunHandle(self, run_id)

    async def check(self, *, unregistered: bool = True) -> CheckReport:
        """What needs a human after a crash: interrupted steps, orphaned and unknown runs.

        ``unregistered=False`` skips runs of workflows this process lacks (for
        tools, like the CLI, that import no workflows).
        """
        self._check_open()
        runs = await self._unfinished()
        journals = await self.store.load_events([run.run_id for run in runs])
        now = self._wall.now()

        def owned_by_live_runtime(run: RunRecord) -> bool:
            return (
                run.owner is not None
                and (run.lease_until or 0) >= now
                and not _owner_is_dead(run.owner)
            )

        return build_report(
            runs,
            journals,
            owned_by_live_runtime,
            lambda run: not unregistered or registered(run.workflow, run.version) is not None,
            self._live.keys() | self._dormant.keys(),
        )

    # -- running runs --------------------------------------------------------

    def _launch(self, record: RunRecord, wf: Workflow[Any, Any], journal: RunJournal) -> LiveRun:
        live = LiveRun(self, record, wf, journal)
        self._live[record.run_id] = live
        live.launch()
        return live

    def reclaim_later(self, run_id: str) -> None:
        """Claim a run again, with backoff, until the store answers (see LiveRun._let_go)."""
        task = asyncio.create_task(self._reclaim(run_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reclaim(self, run_id: str) -> None:
        delay = 0.05
        while self._open and run_id not in self._live:
            await asyncio.sleep(delay)
            try:
                await self._claim(include_own=True, run_ids=[run_id])
            except Exception as exc:
                log.warning("could not claim run %s again yet (%s); retrying", run_id, exc)
                delay = min(delay * 2, 2.0)
            else:
                self._notify()  # result() waiters look again
                return

    def run_ended(self, live: LiveRun) -> None:
        self.forget(live)
        self._notify()

    def forget(self, live: LiveRun) -> None:
        """This incarnation no longer runs here."""
        if self._live.get(live.run_id) is live:
            del self._live[live.run_id]

    def note_suspended(self, live: LiveRun) -> None:
        """A run parked: maybe rebuild it (always_replay), maybe skip virtual time."""
        loop = asyncio.get_running_loop()
        if self.always_replay:
            loop.call_soon(self._rebuild_if_idle, live)
        elif len(self._live) > self.max_in_memory_runs:
            loop.call_soon(self._evict_if_idle, live)
        if isinstance(self.clock, VirtualClock) and self.clock.auto_skip:
            loop.call_soon(self._skip_if_idle)

    def _skip_if_idle(self) -> None:
        runs = self._live.values()
        if runs and all(run.blocked_on_timers for run in runs):
            self.timers.skip_to_next()

    def _rebuild_if_idle(self, live: LiveRun) -> None:
        position = live.positions_used
        if self._live.get(live.run_id) is live and live.idle and position not in live.replayed_at:
            live.retire()
            task = asyncio.create_task(self._rebuild(live, live.replayed_at | {position}))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _evict_if_idle(self, live: LiveRun) -> None:
        """Unload an idle run; its timers and awaited events stay here to wake it."""
        if self._live.get(live.run_id) is not live or not live.idle:
            return
        waits = live.parked_waits()
        live.retire()
        del self._live[live.run_id]
        self._unload(live.run_id, waits)

    def _unload(self, run_id: str, waits: list[tuple[float | None, str | None]]) -> None:
        """Keep only what wakes the run: a timer per deadline, the names of awaited events."""
        timers = [
            self.timers.call_at(deadline, functools.partial(self._wake, run_id))
            for deadline, _ in waits
            if deadline is not None
        ]
        messages = {message for _, message in waits if message is not None}
        self._dormant[run_id] = _Dormant(timers, messages)

    def _wake(self, run_id: str) -> None:
        """Load an unloaded run again; runs woken together are loaded in bulk."""
        if not self._drop_dormant(run_id):
            return
        if not self._waking:
            task = asyncio.create_task(self._load_woken())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self._waking.add(run_id)

    async def _load_woken(self) -> None:
        await asyncio.sleep(0)  # let the other runs woken in this moment join
        run_ids, self._waking = sorted(self._waking), set()
        if self._open:
            await self._claim(include_own=True, run_ids=run_ids)

    async def _rebuild(self, old: LiveRun, replayed_at: set[int]) -> None:
        """Replace a retired run by a new incarnation replayed from the stored journal."""
        if old.task is not None:
            await asyncio.gather(old.task, return_exceptions=True)
        if not self._open or self._live.get(old.run_id) is not old:
            return
        self.run_ended(old)
        await self._claim(include_own=True, run_ids=[old.run_id])
        new = self._live.get(old.run_id)
        if new is not None:
            new.replayed_at = replayed_at

    async def _unfinished(self) -> list[RunRecord]:
        return await self.store.list_runs(limit=None, unfinished=True)

    def _executes(self) -> list[tuple[str, str]]:
        """The (name, version) pairs of the workflows this runtime runs."""
        if self.workflows is None:
            return registry_keys()
        return [(wf.name, wf.version or "1") for wf in self.workflows]

    def _executable(self, name: str, version: str | None) -> Workflow[Any, Any] | None:
        wf = registered(name, version)
        if wf is None or self.workflows is None or wf in self.workflows:
            return wf
        return None

    async def _claim(self, *, include_own: bool, run_ids: Sequence[str] | None = None) -> None:
        """Take free runs, as many as this runtime has room for (it claims again while
        a whole batch came back), and start or park them."""
        if not self.recover:
            return
        dead = [owner for owner in await self.store.owners() if _owner_is_dead(owner)]
        while True:
            now = self._wall.now()
            limit = max(1, self.max_in_memory_runs - len(self._live))
            records = await self.store.claim(
                self.owner,
                now + self.lease_seconds,
                now,
                limit=limit,
                dead_owners=dead,
                run_ids=run_ids,
                workflows=self._executes(),
                include_own=include_own,
            )
            taken = sum(1 for record in records if record.owner != self.owner)
            records = [record for record in records if record.run_id not in self._live]
            # Loaded and started a slice at a time: while one slice's journals are read, the
            # runs started before it move on (and many finish), so fewer are in memory at once.
            for start in range(0, len(records), _RECOVERY_SLICE):
                await self._resume(records[start : start + _RECOVERY_SLICE])
            if taken < limit or not self._open:
                return
            include_own = False

    async def _resume(self, records: list[RunRecord]) -> None:
        """Start claimed runs from their journals, or leave the parked ones unloaded."""
        journals = await self.store.load_events([record.run_id for record in records])
        # A run whose journal shows it parked at a sleep or a wait is not started: it
        # would only replay to the same place. It stays unloaded until something wakes
        # it, as an evicted run does. (Virtual time skips only by looking at live runs.)
        may_unload = not self.always_replay and not (
            isinstance(self.clock, VirtualClock) and self.clock.auto_skip
        )
        now = self.clock.now()
        for record in records:
            wf = self._executable(record.workflow, record.version)
            if wf is None or record.run_id in self._live:  # started meanwhile, by a wake-up
                continue
            try:
                journal = RunJournal(journals[record.run_id])
                parked = journal.parked(now) if may_unload else None
                if parked is not None and record.run_id not in self._dormant:
                    self._unload(record.run_id, [parked])
                    status = "sleeping" if parked[1] is None else "waiting"
                    if record.status != status:  # it crashed between parking and saying so
                        update = RunUpdate(self.clock.now(), status=status)
                        try:
                            await self.store.append(record.run_id, [], update, owner=self.owner)
                        except (LeaseLost, RunEnded):  # taken over or cancelled meanwhile
                            self._drop_dormant(record.run_id)
                    continue
                self._launch(record, wf, journal)
            except CorruptJournal as exc:  # fail that run alone; the others go on
                log.error("%s", exc)
                update = RunUpdate(self.clock.now(), status="failed", error=encode(exc.to_record()))
                await self.store.append(record.run_id, [], update)

    async def _report_unregistered(self) -> None:
        for record in await self._unfinished():
            key = f"{record.workflow}@{record.version}"
            if registered(record.workflow, record.version) is None and key not in self._reported:
                self._reported.add(key)
                log.warning(
                    "runs of workflow %r version %r are unfinished but not registered in this"
                    " process; they are left untouched (import the module that defines it)",
                    record.workflow,
                    record.version,
                )

    async def _poll(self) -> None:
        changed = False  # a change heard but not yet read (kept when reading it failed)
        while True:
            try:
                if not changed:
                    timeout = max(0.0, self._next_lease_renewal - self._wall.now())
                    changed = await self.store.wait_for_change(timeout)
                await self._poll_once(changed)
                changed = False
            except StoreUnavailable as exc:
                log.warning("durable poller: %s; retrying", exc)
                await asyncio.sleep(self.poll_interval)
            except Exception:
                log.exception("durable poller: reading the journal failed; retrying")
                await asyncio.sleep(self.poll_interval)

    async def _poll_once(self, changed: bool) -> None:
        if changed:
            for event in await self.store.changes_since(self._last_seq):
                self._last_seq = event.seq
                if event.kind == MESSAGE:
                    self._deliver(event)
                elif event.kind == CANCEL:
                    self._forget_cancelled(event.run_id)
            await self._claim(include_own=False)
            self._notify()
        if self._wall.now() >= self._next_lease_renewal:
            self._next_lease_renewal = self._wall.now() + self.lease_seconds / 3
            before = dict(self._live)
            now = self._wall.now()
            held = await self.store.renew(self.owner, now + self.lease_seconds, now)
            if held is not None:  # our lease had lapsed: another runtime may have taken runs
                await self._drop_lost(before, held)
            await self._claim(include_own=False)

    async def _drop_lost(self, before: dict[str, LiveRun], held: set[str]) -> None:
        """Stop running runs another runtime took over (our lease expired while we stalled).

        ``before`` is what ran here before the renewal; a run missing from
        ``held`` may also just have finished, so the journal confirms the loss.
        """
        for run_id, live in before.items():
            if run_id in held or self._live.get(run_id) is not live or live.ended:
                continue
            record = await self.store.get_run(run_id)
            if record is None or record.status in TERMINAL or record.owner == self.owner:
                continue
            log.warning("run %s was taken over by %s after our lease expired", run_id, record.owner)
            self.forget(live)
            live.retire()

    # -- change notification -------------------------------------------------

    def _change_future(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._changed.add(future)
        return future

    def _notify(self, error: BaseException | None = None) -> None:
        waiting, self._changed = self._changed, set()
        for future in waiting:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)


@dataclasses.dataclass
class _Dormant:
    """An unloaded run: the timers and event names that wake it."""

    timers: list[int]
    messages: set[str]


_RECOVERY_SLICE = 500


class _HexPool:
    """Random hex digits for run ids, drawn from ``os.urandom`` 4 KB at a time (it is a
    system call) and handed out in order."""

    __slots__ = ("at", "digits")

    def __init__(self) -> None:
        self.digits = ""
        self.at = 0

    def clear(self) -> None:
        self.digits, self.at = "", 0


_pool = _HexPool()
# A forked child must not hand out its parent's remaining random digits as its own.
os.register_at_fork(after_in_child=_pool.clear)
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""The RFC 9562 variant (binary 10) over two random bits."""


def new_run_id() -> str:
    """A UUID version 7 (RFC 9562): time-ordered, so new runs' rows and index entries
    land at the end of their B-trees instead of on random pages. Built as text: the
    48-bit millisecond time, the version, 74 random bits and the variant."""
    pool, at = _pool, _pool.at
    if at + 19 > len(pool.digits):
        pool.digits, at = os.urandom(4096).hex(), 0
    pool.at = at + 19
    r = pool.digits[at : at + 19]
    t = f"{time.time_ns() // 1_000_000:012x}"
    return f"{t[:8]}-{t[8:]}-7{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:]}"


def _owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != _HOST or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def run(wf: Workflow[P, R], *args: Any, db: str = "durable.db", **kwargs: Any) -> R:
    """Run one workflow to its end from a script: the ``asyncio.run`` of durable."""

    async def main() -> R:
        async with Runtime(db) as runtime:
            handle = await runtime.start(wf, *args, **kwargs)
            return await handle.result()

    return asyncio.run(main())
