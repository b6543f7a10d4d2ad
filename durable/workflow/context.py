"""``WorkflowContext``: durable calls, their positions, and replay from the journal.

Each durable call takes the next position of its run when it is made. If the
journal already has that position, the call replays it (a completed step
returns its stored result without running); otherwise it runs and journals
it. The context never touches storage directly: it asks its ``RunHost``.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import random as _random
import uuid as _uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from typing_extensions import ParamSpec

from durable._base.codec import encode
from durable._base.ids import check_name
from durable._base.numbers import seconds as finite_seconds
from durable.errors import CorruptJournal, NonDeterminismError, WaitTimeout, error_from_record
from durable.journal.kinds import (
    PATCHED,
    SLEEP_STARTED,
    STREAM_CLOSED,
    STREAM_VALUE,
    VALUE,
    WAIT_COMPLETED,
    WAIT_STARTED,
    family,
    user_wait_id,
)
from durable.journal.records import EventRecord
from durable.journal.run_journal import payload
from durable.workflow.composition import ChildHandle, first, parallel, send_event, start_child
from durable.workflow.logs import WorkflowLogger
from durable.workflow.race import became_ready, call_began, journaling, took_message
from durable.workflow.state import WorkflowState
from durable.workflow.steps import awaitable_plan, run_step, step_plan

if TYPE_CHECKING:
    from durable.workflow.decorators import Workflow
    from durable.workflow.host import RunHost

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

InputType = Literal["text", "approval", "choice"]
APPROVAL_OPTIONS = [{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}]


class WorkflowContext:
    """The handle a workflow uses for every durable call."""

    def __init__(self, host: RunHost) -> None:
        self._host = host
        self._next_position = 0
        self._patches: set[str] = set()
        self._state: WorkflowState | None = None
        self._logger: WorkflowLogger | None = None

    @property
    def state(self) -> WorkflowState:
        """Durable key-value state others can read (``rt.get_state``): every change is
        journaled and a replay rebuilds it."""
        if self._state is None:
            self._state = WorkflowState(self)
        return self._state

    @property
    def run_id(self) -> str:
        return self._host.run_id

    @property
    def workflow_name(self) -> str:
        return self._host.workflow_name

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger for workflow code (``durable.workflow.<name>``) that stays quiet while
        the run replays, so a line is not logged again on every replay; its records
        carry ``run_id`` and ``workflow``."""
        if self._logger is None:
            self._logger = WorkflowLogger(self)
        return self._logger

    @property
    def is_replaying(self) -> bool:
        """True while the workflow re-executes calls its journal already holds (after a
        restart, or a rebuild from the journal): guard prints and log lines with it so
        they are not repeated on every replay."""
        return self._next_position < self._host.journal.replay_end

    def __repr__(self) -> str:
        return f"<WorkflowContext run={self.run_id!r} workflow={self.workflow_name!r}>"

    # -- positions ---------------------------------------------------------

    def _take_position(self, kind: str, name: str) -> int:
        host = self._host
        host.check_running()
        call_began()
        position = self._next_position
        self._next_position += 1
        events = host.journal.at(position)
        if events:
            first = events[0]
            if family(first.kind) != kind or first.name != name:
                error = NonDeterminismError(
                    position, f"{family(first.kind)} {first.name!r}", f"{kind} {name!r}"
                )
                host.fatal(error)
                raise error
        return position

    def _positions_used(self) -> int:
        return self._next_position

    def _read(self, event: EventRecord) -> Any:
        """A journal entry's payload; an unreadable one fails the run, whatever the
        workflow catches, and leaves the journal as it is."""
        try:
            return payload(event)
        except CorruptJournal as error:
            self._host.fatal(error)
            raise

    # -- steps ---------------------------------------------------------------

    @overload
    def step(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(
        self, fn: Callable[P, AsyncIterator[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, list[T]]: ...

    @overload
    def step(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(
        self, name: str, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(
        self,
        name: str,
        fn: Callable[P, AsyncIterator[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Coroutine[Any, Any, list[T]]: ...

    @overload
    def step(
        self, name: str, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(self, name: str, awaitable: Awaitable[R], /) -> Coroutine[Any, Any, R]: ...

    def step(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:  # type: ignore[misc]
        """Run ``fn(*args, **kwargs)`` as a journaled step (optionally named first).

        The result is journaled before this returns and committed before any
        later write of the run (the next step's start, a sleep, the run's
        end); on replay the stored result is returned without calling ``fn``.
        Sync functions run in a worker thread. ``ctx.step("name", awaitable)``
        checkpoints an awaitable: one attempt, and on replay it is closed unawaited.
        """
        explicit: str | None = None
        if args and isinstance(args[0], str):
            explicit, args = check_name("a step's name (ctx.step('name', ...))", args[0]), args[1:]
        if explicit is not None and len(args) == 1 and not kwargs and _is_awaitable(args[0]):
            return self._awaitable_step(explicit, args[0])
        if not args or not callable(args[0]):
            raise TypeError(
                "ctx.step needs a function: ctx.step(fn, *args) or ctx.step('name', fn, *args),"
                " or a name and an awaitable: ctx.step('name', fetch(url))"
            )
        plan = step_plan(args[0])
        name = explicit or plan.name
        position = self._take_position("step", name)
        return run_step(self, position, name, plan, args[1:], kwargs)

    def _awaitable_step(self, name: str, awaitable: Awaitable[Any]) -> Coroutine[Any, Any, Any]:
        position = self._take_position("step", name)
        plan, awaited = awaitable_plan(name, awaitable)

        async def checkpoint() -> Any:
            try:
                return await run_step(self, position, name, plan, (), {})
            finally:
                close = getattr(awaitable, "close", None)
                if not awaited[0] and close is not None:
                    close()  # replayed: its value is in the journal

        return checkpoint()

    # -- time ----------------------------------------------------------------

    # Durable calls take their position when they are called, not when first awaited, so
    # calls passed to ctx.parallel, ctx.first or asyncio.gather number in argument order.

    def sleep(self, duration: float | dt.timedelta) -> Coroutine[Any, Any, None]:
        """Sleep durably: after a restart only the time left is waited."""
        raw = duration.total_seconds() if isinstance(duration, dt.timedelta) else duration
        length = finite_seconds("ctx.sleep's duration", raw, zero_ok=True)
        return self._sleep(self._take_position("sleep", "sleep"), lambda now: now + length)

    def sleep_until(self, moment: dt.datetime) -> Coroutine[Any, Any, None]:
        """Sleep durably until ``moment`` (a timezone-aware datetime)."""
        if moment.tzinfo is None:
            raise ValueError(
                "ctx.sleep_until needs a timezone-aware datetime,"
                " e.g. datetime.now(timezone.utc) + timedelta(hours=1)"
            )
        wake_at = moment.timestamp()
        return self._sleep(self._take_position("sleep", "sleep"), lambda now: wake_at)

    async def _sleep(self, position: int, wake_at_from: Callable[[float], float]) -> None:
        host = self._host
        events = host.journal.at(position)
        if events:
            wake_at = float(self._read(events[0])["wake_at"])
        else:
            wake_at = wake_at_from(host.clock.now())
            await host.append(position, SLEEP_STARTED, "sleep", encode({"wake_at": wake_at}))
        while host.clock.now() < wake_at:
            await host.suspend("sleeping", wake_at, None)
        became_ready(wake_at)
        host.journal.settle(position)

    # -- waiting for people and events --------------------------------------

    def wait_for_event(
        self, name: str, *, timeout: float | dt.timedelta | None = None
    ) -> Coroutine[Any, Any, Any]:
        """Wait for ``rt.send_event(run_id, name, payload)`` and return the payload.

        Events sent before the run waits are kept and delivered in order, one
        per wait. With ``timeout`` (seconds) it raises ``WaitTimeout``; ``timeout=0``
        returns an event already there or raises at once (journaled either way).
        """
        check_name("an event's name (ctx.wait_for_event)", name)
        seconds = _timeout(timeout)
        position = self._take_position("wait", name)
        return self._wait(position, name, seconds, {})

    def wait_for_user(
        self,
        question: str,
        *,
        input_type: InputType = "text",
        options: Sequence[dict[str, str] | str] | None = None,
        timeout: float | dt.timedelta | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """Ask a person and wait for ``rt.respond(run_id, value)``.

        ``approval`` (options default to yes/no) and ``choice`` answers are one
        of the option ids; ``text`` answers are any JSON value. With ``timeout``
        (seconds) it raises ``WaitTimeout``; ``timeout=0`` only checks for an answer.
        """
        choices = _normalize_options(input_type, options)
        seconds = _timeout(timeout)
        position = self._take_position("wait", user_wait_id(position=self._next_position))
        details = {"question": question, "input_type": input_type, "options": choices}
        return self._wait(position, user_wait_id(position), seconds, details)

    async def _wait(
        self,
        position: int,
        name: str,
        seconds: float | None,
        details: dict[str, Any],
    ) -> Any:
        host = self._host
        try:
            events = host.journal.at(position)
            if events and events[-1].kind == WAIT_COMPLETED:  # not given back since
                return await self._replayed_wait(position, events)
            if events:
                deadline = self._read(events[0]).get("deadline")
            else:
                deadline = None if seconds is None else host.clock.now() + seconds
                started = encode({**details, "deadline": deadline, "timeout": seconds})
                await host.append(position, WAIT_STARTED, name, started)
            while True:
                message = host.journal.take_message(name)
                if message is not None:
                    # Read before it is copied: a corrupt message is blamed on its own
                    # row, and no new row repeats it.
                    value = self._read(message)
                    took_message(position, message)
                    became_ready(message.created_at)
                    answered = (
                        f'{{"message":{message.seq},"sent_at":{encode(message.created_at)},'
                        f'"value":{message.payload}}}'
                    )
                    with journaling():
                        await host.append(position, WAIT_COMPLETED, name, answered)
                    return _wait_outcome({"value": value})
                if deadline is not None and host.clock.now() >= deadline:
                    became_ready(deadline)
                    error = WaitTimeout(f"no {_describe_wait(name)} arrived before the deadline")
                    timed_out = encode({"timed_out": True, "error": error.to_record()})
                    with journaling():
                        await host.append(position, WAIT_COMPLETED, name, timed_out)
                    _wait_outcome({"timed_out": True, "error": error.to_record()})
                await host.suspend("waiting", deadline, name)
        finally:
            host.journal.settle(position)

    async def _replayed_wait(self, position: int, events: list[EventRecord]) -> Any:
        """A wait whose end is journaled: its outcome, in its turn. In a race it tells
        when it became ready, and which message it took, before anything can cancel it."""
        done = self._read(events[-1])
        message = self._host.journal.messages.get(done.get("message"))
        if message is not None:
            took_message(position, message)
            became_ready(message.created_at)
        elif done.get("timed_out"):
            became_ready(self._read(events[0]).get("deadline") or events[-1].created_at)
        await self._host.journal.in_turn(position, events[-1])
        return _wait_outcome(done)

    # -- values that must not change on replay ------------------------------

    def now(self) -> dt.datetime:
        """The current time (UTC), journaled: replay returns the same moment."""
        seconds = self._recorded("now", lambda: self._host.clock.now())
        return dt.datetime.fromtimestamp(seconds, dt.UTC)

    def uuid4(self) -> _uuid.UUID:
        """A random UUID, journaled: replay returns the same one."""
        return _uuid.UUID(self._recorded("uuid4", lambda: str(_uuid.uuid4())))

    def random(self) -> float:
        """A random float in [0, 1), journaled: replay returns the same one."""
        return float(self._recorded("random", _random.random))

    def _recorded(self, name: str, make: Callable[[], Any]) -> Any:
        position = self._take_position("value", name)
        events = self._host.journal.at(position)
        self._host.journal.settle(position)
        if events:
            return self._read(events[0])["value"]
        value = make()
        self._host.append_nowait(position, VALUE, name, encode({"value": value}))
        return value

    # -- composition ---------------------------------------------------------

    def start_child(
        self, wf: Workflow[P, R], /, *args: Any, run_id: str | None = None, **kwargs: Any
    ) -> Coroutine[Any, Any, ChildHandle[R]]:
        """Start ``wf(*args, **kwargs)`` as a child run and return its ``ChildHandle``.

        Its run id is this run's id and the call's position unless ``run_id`` names
        it (``start_child_run`` passes arguments for a workflow with a parameter
        called ``run_id``). Its start and end are journaled here, so a replay gets the
        same child and its result without starting anything again. A ``run_id`` that
        names an existing run of ``wf`` with this input attaches to it (it keeps its
        own parent); another workflow or input raises ``IdempotencyKeyMismatch``.
        """
        return self.start_child_run(wf, args, kwargs, run_id=run_id)

    def start_child_run(
        self,
        wf: Workflow[P, R],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        run_id: str | None = None,
    ) -> Coroutine[Any, Any, ChildHandle[R]]:
        """``start_child`` with the workflow's arguments passed as a list and a dict."""
        if run_id is not None:
            check_name("a child's run_id", run_id)
        if run_id == self.run_id:
            raise ValueError(
                f"a child's run_id names the run that starts it ({run_id!r}), which would wait"
                " for its own end; give the child another run_id"
            )
        position = self._take_position("child", wf.name)
        return start_child(self, position, wf, args, kwargs, run_id)

    def send_event(self, run_id: str, name: str, payload: Any = None) -> Coroutine[Any, Any, None]:
        """Send an event to another run's ``wait_for_event(name)``, exactly once: the send
        is journaled here, so a replay or a crash never sends it again. A run that does
        not exist raises ``RunNotFound``, one that has ended ``DurableError`` (the same
        on every replay)."""
        check_name("the run_id of ctx.send_event", run_id)
        check_name("an event's name (ctx.send_event)", name)
        text = encode(payload, self._host.max_value_bytes)
        position = self._take_position("event", name)
        return send_event(self, position, run_id, name, text)

    async def parallel(self, *awaitables: Awaitable[Any]) -> list[Any]:
        """Await durable calls together; their values in argument order. Every call runs
        to its end; if any raised, the first of them (in argument order) is raised."""
        return await parallel(list(awaitables))

    async def gather(self, **awaitables: Awaitable[Any]) -> dict[str, Any]:
        """``parallel`` by name: a dict of the calls' values under their keywords."""
        values = await parallel(list(awaitables.values()))
        return dict(zip(awaitables, values, strict=True))

    def first(self, *awaitables: Awaitable[Any]) -> Coroutine[Any, Any, tuple[int, Any]]:
        """The index and value of the first call to finish; the others are cancelled.
        Which one won is journaled, so a replay takes the same branch even when all of
        them are in the journal by then (``asyncio.wait(FIRST_COMPLETED)`` cannot)."""
        if not awaitables:
            raise ValueError("ctx.first needs at least one awaitable")
        return first(self, self._take_position("first", "first"), list(awaitables))

    async def write_stream(self, key: str, value: Any) -> None:
        """Append ``value`` to the run's stream ``key`` (journaled: written once however
        often the run replays); ``rt.read_stream(run_id, key)`` reads it live."""
        text = encode(value, self._host.max_value_bytes)
        await self._stream(STREAM_VALUE, key, f'{{"value":{text}}}')

    async def close_stream(self, key: str) -> None:
        """End the stream ``key``: its readers stop once they have read what it holds."""
        await self._stream(STREAM_CLOSED, key, "{}")

    async def _stream(self, kind: str, key: str, text: str) -> None:
        check_name("a stream's key", key)
        position = self._take_position("stream", key)
        events = self._host.journal.at(position)
        self._host.journal.settle(position)
        if not events:
            await self._host.append(position, kind, key, text)

    def patched(self, patch_id: str) -> bool:
        """True where this run reaches the call under code that has it (journaled), False
        for a run whose journal already went past this point without it; fixed per run.

        Deploy ``if ctx.patched("new-step"): <new code> else: <old code>`` so runs in
        flight keep replaying the old branch while new runs take the new one.
        """
        check_name("patch_id", patch_id)
        if patch_id in self._patches:
            raise ValueError(
                f"ctx.patched({patch_id!r}) was called twice in run {self.run_id!r}; give each"
                " change its own patch id (its answer is fixed per run: keep it in a variable)"
            )
        self._patches.add(patch_id)
        events = self._host.journal.at(self._next_position)
        if events and (events[0].kind != PATCHED or events[0].name != patch_id):
            return False  # the run went past this point under code without the patch
        position = self._take_position("patch", patch_id)
        self._host.journal.settle(position)
        if not events:
            self._host.append_nowait(position, PATCHED, patch_id, "{}")
        return True


def _timeout(timeout: float | dt.timedelta | None) -> float | None:
    """A wait's timeout in seconds; 0 checks without waiting (DBOS's and Temporal's
    ``timeout=0``): what has already arrived is returned, else ``WaitTimeout`` at once."""
    raw = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout
    return None if raw is None else finite_seconds("a wait's timeout", raw, zero_ok=True)


def _is_awaitable(value: Any) -> bool:
    return inspect.isawaitable(value) and not callable(value)


def _wait_outcome(data: Any) -> Any:
    if data.get("timed_out"):
        raise error_from_record(data["error"])
    return data.get("value")


def _describe_wait(name: str) -> str:
    return "answer" if name.startswith("user:") else f"event {name!r}"


def _normalize_options(
    input_type: str, options: Sequence[dict[str, str] | str] | None
) -> list[dict[str, str]] | None:
    if input_type not in ("text", "approval", "choice"):
        raise ValueError(f"input_type must be 'text', 'approval' or 'choice', got {input_type!r}")
    if options is None:
        if input_type == "choice":
            raise ValueError("wait_for_user(input_type='choice') needs options=[...]")
        return APPROVAL_OPTIONS if input_type == "approval" else None
    normalized = []
    for option in options:
        if isinstance(option, str):
            normalized.append({"id": option, "label": option})
        elif isinstance(option, dict) and isinstance(option.get("id"), str):
            normalized.append({"id": option["id"], "label": str(option.get("label", option["id"]))})
        else:
            raise ValueError(f"each option needs a string 'id', got {option!r}")
    return normalized
