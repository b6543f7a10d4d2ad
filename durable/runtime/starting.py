"""Starting a run: its arguments checked and stored, its row written, and where it goes.

A run this runtime executes starts at once; one of a queue waits ``queued`` for its
queue; any other is left unowned for a runtime that executes its workflow. The
run id is the idempotency key: the same id again with the same workflow, version
and input is the same run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from durable._base.clock import Clock, wall_time
from durable._base.codec import canonical, digest, encode
from durable._base.ids import check_name, new_run_id
from durable._base.numbers import seconds
from durable.errors import IdempotencyKeyMismatch, SerializationError
from durable.journal.budget import Budget
from durable.journal.info import RunStatus
from durable.journal.records import RunRecord
from durable.journal.run_journal import RunJournal
from durable.observe.telemetry import Telemetry
from durable.runtime.lifecycle import Lifecycle
from durable.runtime.options import RuntimeOptions
from durable.runtime.residency import Residency
from durable.store.ports import Store
from durable.workflow.decorators import Workflow
from durable.workflow.queues import Queue, queue_named


class Starter:
    """The runtime's part that starts runs."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        options: RuntimeOptions,
        lifecycle: Lifecycle,
        telemetry: Telemetry,
        residency: Residency,
        admit_soon: Callable[[], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.options = options
        self.lifecycle = lifecycle
        self.telemetry = telemetry
        self.residency = residency
        self.admit_soon = admit_soon
        """Admit queued runs (a run was queued)."""

    async def start(
        self,
        wf: Workflow[Any, Any],
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
    ) -> str:
        """See ``Runtime.start_run``; returns the run's id."""
        self.lifecycle.check_open()
        through, limit = _check_start(wf, args, kwargs, run_id, timeout, queue, priority, dedup_key)
        if budget is not None and not isinstance(budget, Budget):
            raise TypeError(f"budget must be a durable.Budget, got {budget!r}")
        executes = through is None and self._executes(wf)
        input_text, input_digest = self._input(wf, args, kwargs, budget or wf.budget)
        rid = run_id or new_run_id()
        now = self.clock.now()
        record = RunRecord(
            run_id=rid,
            workflow=wf.name,
            version=wf.version,
            status=_first_status(executes, through),
            input=input_text,
            input_digest=input_digest,
            output=None,
            error=None,
            owner=self.options.identity if executes else None,
            lease_until=wall_time() + self.options.lease_seconds if executes else None,
            created_at=now,
            updated_at=now,
            parent_run_id=parent_run_id,
            deadline=None if limit is None else now + limit,
            queue=None if through is None else through.name,
            priority=priority,
            dedup_key=dedup_key,
            trace=self.telemetry.trace_for_start(wf.name, rid),
        )
        if run_id is None and executes:
            # A new id cannot exist yet, so the run starts at once: its row is queued
            # in the run's own write chain, ahead of its first write, and the two
            # share a commit. If the row cannot be written, neither is anything else.
            # A queued write is committed whether or not its caller still waits, so a
            # caller that gives up here leaves a run that executes.
            live = self.residency.launch(record, wf, RunJournal([]))
            await self.store.create_run(record, chain=live.writes, fresh_id=True)
            return record.run_id
        # Once its row is asked for, the start runs to its end even if the caller gives
        # up (is cancelled, times out): a run is then either not written, or it executes.
        creating = asyncio.ensure_future(self._create(wf, record, executes))
        creating.add_done_callback(_seen)  # its error is the caller's, if a caller is left
        await asyncio.shield(creating)
        return record.run_id

    def _executes(self, wf: Workflow[Any, Any]) -> bool:
        """Whether a new run of ``wf`` that no queue holds starts here. A runtime that
        does not run this workflow (recover=False, or not among its workflows) leaves
        it unowned for a worker that does."""
        return self.options.recover and self.options.executable(wf.name, wf.version) is wf

    def _input(
        self,
        wf: Workflow[Any, Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        budget: Budget | None,
    ) -> tuple[str, str]:
        """The run's input as stored (its budget with it, outside the digest), and the
        digest that tells runs of one id apart."""
        stored: dict[str, Any] = {"args": list(args), "kwargs": kwargs}
        if budget is not None:
            stored["budget"] = budget.to_dict()
        try:
            text = encode(stored, self.options.max_value_bytes)
            return text, digest(canonical({"workflow": wf.name, "args": args, "kwargs": kwargs}))
        except SerializationError as exc:
            raise SerializationError(
                f"the arguments of workflow {wf.name!r} cannot be stored: {exc.message}"
            ) from None

    async def _create(self, wf: Workflow[Any, Any], record: RunRecord, executes: bool) -> None:
        """Write the run's row unless its id exists (then check it is the same run), and
        start it here, or leave it to its queue or a worker."""
        stored, created = await self.store.create_run(record)
        rid, input_digest = record.run_id, record.input_digest
        if stored.workflow != wf.name or stored.input_digest != input_digest:
            raise IdempotencyKeyMismatch(rid, stored.input_digest, input_digest)
        if (stored.version or "1") != wf.version:
            raise IdempotencyKeyMismatch(
                rid, f"version {stored.version}", f"version {wf.version}", what="version"
            )
        # A child's id naming a run of another parent (or none) attaches to that run,
        # which keeps its own parent: it existed first.
        if created and executes and self.lifecycle.is_open:  # else claimed when one opens
            self.residency.launch(stored, wf, RunJournal([]))
        elif created and record.queue is not None:
            self.admit_soon()


def _check_start(
    wf: object,
    args: object,
    kwargs: object,
    run_id: str | None,
    timeout: float | None,
    queue: Queue | str | None,
    priority: object,
    dedup_key: str | None,
) -> tuple[Queue | None, float | None]:
    """The checks of a start, raised before anything is written; returns its queue and
    its time limit."""
    if not isinstance(wf, Workflow):
        raise TypeError(
            f"{getattr(wf, '__qualname__', wf)!r} is not a workflow; decorate it with"
            " @durable.workflow before starting it"
        )
    if run_id is not None:
        check_name("run_id", run_id)
    _check_arguments(wf, args, kwargs)
    limit = wf.timeout if timeout is None else seconds("timeout", timeout)
    through = wf.queue if queue is None else queue_named(queue)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int (lower runs first), got {priority!r}")
    if not -(2**31) <= priority < 2**31:
        raise ValueError(
            f"priority must fit in 32 bits (-2147483648 to 2147483647), got {priority}"
        )
    if dedup_key is not None:
        check_name("dedup_key", dedup_key)
        if through is None:
            raise ValueError(
                f"dedup_key={dedup_key!r} needs a queue (queue=... or @workflow(queue=...))"
            )
    return through, limit


def _first_status(executes: bool, through: Queue | None) -> str:
    """Runs this runtime executes start at once (recorded running, saving an update);
    queued runs wait for their queue to admit them, here or in another runtime."""
    if executes:
        return RunStatus.RUNNING.value
    return (RunStatus.PENDING if through is None else RunStatus.QUEUED).value


def _seen(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


def _check_arguments(wf: Workflow[Any, Any], args: object, kwargs: object) -> None:
    """``args`` a list or tuple and ``kwargs`` a dict with string keys that the workflow's
    signature accepts: checked here, not when the run calls the function."""
    if not isinstance(args, (list, tuple)):
        raise TypeError(
            f"the arguments of workflow {wf.name!r} must be a list or tuple (args), got"
            f" {type(args).__name__} {args!r:.60}; pass [value, ...]"
        )
    if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
        raise TypeError(
            f"the keyword arguments of workflow {wf.name!r} must be a dict with string keys"
            f" (kwargs), got {type(kwargs).__name__} {kwargs!r:.60}; pass {{'name': value}}"
        )
    try:
        wf.signature().bind(None, *args, **kwargs)
    except TypeError as exc:
        raise TypeError(
            f"workflow {wf.name!r} cannot take these arguments: {exc}; its signature is"
            f" {wf.fn.__name__}{wf.signature()}"
        ) from None
