"""``explore_crashes``: crash a workflow after each of its journal commits, and check recovery.

One reference run counts the run's journal writes (each append of the run, in
the order the run makes them). Then, for each commit k, a fresh journal runs
the workflow again until it is about to make write k + 1: that write and every
later one are dropped, the runtime is abandoned as a SIGKILL would leave it
(``crash``), and a new runtime recovers the run. The journal then tells what
happened around the crash: the events before the recovery marker are what
commits 0..k left, those after it what the recovery did.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import durable
from durable.journal.kinds import RECOVERED, STEP_COMPLETED, STEP_STARTED
from durable.journal.records import NewEvent
from durable.store import Store, open_store


@dataclasses.dataclass(frozen=True)
class CrashPoint:
    """One crash tried: right after ``commit`` (0 is the run's start), which wrote
    ``call`` at ``position``; ``rerun_steps`` step bodies ran again after recovery
    (interrupted attempts: their completion was never committed)."""

    commit: int
    position: int | None
    call: str
    rerun_steps: int


@dataclasses.dataclass(frozen=True)
class CrashReport:
    """What ``explore_crashes`` tried: the run's outcome (its result, or the error
    record of its failure), how many commits the run makes, one ``CrashPoint`` each."""

    outcome: Any
    commits: int
    crash_points: list[CrashPoint]


@dataclasses.dataclass(frozen=True)
class _Write:
    position: int | None
    call: str


class _CuttingStore:
    """The journal of an explored run, handed to its runtime: counts the run's journal
    writes and, past ``keep`` of them, drops the rest (never committed, as a SIGKILL
    leaves them). Everything else goes to the store it wraps."""

    def __init__(self, store: Store, keep: int | None) -> None:
        self.writes: list[_Write] = []
        self.keep = keep
        self.cut = asyncio.Event()
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _counted(self, events: Sequence[NewEvent]) -> bool:
        """Count one write; False once it is past the crash point."""
        if self.keep is not None and len(self.writes) >= self.keep:
            self.cut.set()
            return False
        self.writes.append(_describe(events))
        return True

    def append(self, run_id: str, events: Sequence[NewEvent], *a: Any, **k: Any) -> Any:
        if self._counted(events):
            return self._store.append(run_id, events, *a, **k)
        return asyncio.get_running_loop().create_future()  # never committed

    def append_nowait(self, run_id: str, events: Sequence[NewEvent], *a: Any) -> None:
        if self._counted(events):
            self._store.append_nowait(run_id, events, *a)


def _describe(events: Sequence[NewEvent]) -> _Write:
    for event in reversed(events):
        if event.position is not None:
            return _Write(event.position, f"{event.kind} {event.name!r}")
    if events:
        return _Write(None, f"{events[-1].kind} {events[-1].name!r}")
    return _Write(None, "a status update")


async def explore_crashes(
    workflow: durable.Workflow[Any, Any],
    *args: Any,
    answers: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> CrashReport:
    """Crash ``workflow(*args, **kwargs)`` right after each journal commit and check
    that recovery gives the same result (or the same error), runs no step whose
    completion was committed again, keeps each step's idempotency key, and meets no
    ``NonDeterminismError``. The first violation raises ``AssertionError`` naming
    the crash point. Sleeps and waits skip on a virtual clock; ``answers`` maps a
    question (or a wait id) or an event name to the value the run receives."""
    given = dict(answers or {})
    with tempfile.TemporaryDirectory(prefix="durable-explore-") as folder:
        base = Path(folder)
        empty = base / "empty.db"
        template, _ = _runtime(empty)  # a journal with its schema, copied for each try
        await template.open()
        await template.close()
        shutil.copyfile(empty, base / "reference.db")
        outcome, writes = await _reference(base / "reference.db", workflow, args, kwargs, given)
        points = []
        for commit in range(len(writes)):
            journal = base / f"crash-{commit}.db"
            shutil.copyfile(empty, journal)
            done = writes[commit - 1] if commit else _Write(None, "the run's start")
            point = CrashPoint(commit, done.position, done.call, 0)
            rerun = await _crash_at(journal, point, workflow, args, kwargs, given, outcome)
            points.append(dataclasses.replace(point, rerun_steps=rerun))
        return CrashReport(outcome, len(writes), points)


def _runtime(path: Path, keep: int | None = None) -> tuple[durable.Runtime, _CuttingStore]:
    """A runtime on ``path`` whose journal writes are counted, and cut past ``keep``."""
    # Commits need not survive power loss here: the crash is simulated.
    store = _CuttingStore(open_store(path, "normal", "loop", 0.25), keep)
    return durable.Runtime(path, clock=durable.VirtualClock(), store=cast(Store, store)), store


async def _crash(rt: durable.Runtime) -> durable.Runtime:
    """``crash`` for a runtime handed its store: abandon it, and open a runtime with
    its identity (so it takes the leases back at once) on its journal, uncut."""
    await rt.abandon()
    reopened = durable.Runtime(
        rt.path, clock=rt.clock, durability="normal", writer="loop", identity=rt.owner
    )
    await reopened.open()
    return reopened


async def _reference(
    path: Path,
    workflow: durable.Workflow[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    answers: dict[str, Any],
) -> tuple[Any, list[_Write]]:
    rt, cutter = _runtime(path)
    await rt.open()
    try:
        handle = await rt.start_run(workflow, args, kwargs, run_id="explored")
        outcome = await _outcome(rt, handle.run_id, answers)
        return outcome, cutter.writes
    finally:
        await rt.close()


async def _crash_at(
    path: Path,
    point: CrashPoint,
    workflow: durable.Workflow[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    answers: dict[str, Any],
    expected: Any,
) -> int:
    rt, cutter = _runtime(path, point.commit)
    await rt.open()
    try:
        handle = await rt.start_run(workflow, args, kwargs, run_id="explored")
        await _until_cut(rt, handle.run_id, answers, cutter)
        rt = await _crash(rt)
        outcome = await _outcome(rt, handle.run_id, answers)
        history = await rt.history(handle.run_id)
    finally:
        await rt.close()
    where = f"crash right after commit {point.commit} (position {point.position}, {point.call})"
    failed = outcome.get("failed") if isinstance(outcome, dict) else None
    if isinstance(failed, dict) and failed.get("code") == "NON_DETERMINISM" and outcome != expected:
        raise AssertionError(f"{where}: the recovery met a NonDeterminismError: {failed}")
    if _comparable(outcome) != _comparable(expected):
        raise AssertionError(f"{where}: the run ended {outcome!r}, not {expected!r} as uncrashed")
    return _check_history(history, where)


def _comparable(outcome: Any) -> Any:
    """The outcome as a crash may not change it. A step that failed for good may report
    one attempt more than uncrashed: an attempt a crash cut short does not count against
    ``max_attempts``, so one more runs. Its failure is compared without the count."""
    failed = outcome.get("failed") if isinstance(outcome, dict) else None
    if not isinstance(failed, dict) or failed.get("code") != "STEP_FAILED":
        return outcome
    return {"failed": {k: v for k, v in failed.items() if k not in ("attempts", "message")}}


async def _until_cut(
    rt: durable.Runtime, run_id: str, answers: dict[str, Any], cutter: _CuttingStore
) -> None:
    """Drive the run (answering it) until its next write is dropped, or it ends."""
    ended = asyncio.ensure_future(_outcome(rt, run_id, answers))
    cut = asyncio.ensure_future(cutter.cut.wait())
    try:  # time skips while _outcome awaits the run, and stops at its questions
        await asyncio.wait({ended, cut}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (ended, cut):
            task.cancel()
        await asyncio.gather(ended, cut, return_exceptions=True)


async def _outcome(rt: durable.Runtime, run_id: str, answers: dict[str, Any]) -> Any:
    """The run's result, or the error record it failed with, answering its questions
    (awaited one by one: a virtual clock skips time meanwhile, never past a question)."""
    for name, value in answers.items():  # events are kept until the run waits for them
        with contextlib.suppress(ValueError, durable.DurableError):
            await rt.send_event(run_id, name, value, key=f"explore:{name}")
    while await _answered(rt, run_id, answers):
        pass
    try:
        return await rt.handle(run_id).result()
    except (durable.WorkflowFailed, durable.WorkflowCancelled) as error:
        return {"failed": getattr(error, "error", None) or str(error)}


async def _answered(rt: durable.Runtime, run_id: str, answers: dict[str, Any]) -> bool:
    """Answer the run's next question; False once it has ended without asking."""
    try:
        question = await rt.wait_for_question(run_id)
    except durable.DurableError:  # it ended
        return False
    for key in (question.question, question.wait_id):
        if key in answers:
            with contextlib.suppress(durable.NoPendingWait):
                await rt.respond(run_id, answers[key], wait_id=question.wait_id)
            return True
    raise AssertionError(
        f"the run asks {question.question!r} (wait id {question.wait_id!r}) and"
        " explore_crashes has no answer for it: pass answers={question: value}"
    )


def _check_history(history: list[dict[str, Any]], where: str) -> int:
    """The step bodies re-run after the recovery; AssertionError for one that ran
    again after its completion was committed, or a step that changed at a position."""
    split = next((i for i, e in enumerate(history) if e["kind"] == RECOVERED), len(history))
    before, after = history[:split], history[split:]
    completed = {e["position"] for e in before if e["kind"] == STEP_COMPLETED}
    started = {e["position"] for e in before if e["kind"] == STEP_STARTED}
    names: dict[int, str] = {}
    for event in history:
        if event["kind"] == STEP_STARTED:
            name = names.setdefault(event["position"], event["name"])
            if name != event["name"]:
                raise AssertionError(
                    f"{where}: position {event['position']} ran step {name!r}, then"
                    f" {event['name']!r}: its idempotency key changed between attempts"
                )
    for event in after:
        if event["kind"] == STEP_STARTED and event["position"] in completed:
            raise AssertionError(
                f"{where}: step {event['name']!r} at position {event['position']} ran"
                " again after the recovery, though its completion was committed"
            )
    return sum(1 for e in after if e["kind"] == STEP_STARTED and e["position"] in started)
