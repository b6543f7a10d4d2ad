"""``WorkflowContext``: durable calls, their positions, and replay from the journal.

Each durable call takes the next position of its run when it is made. If the
journal already has that position, the call replays it (a completed step
returns its stored result without running); otherwise it runs and journals
it. The context never touches storage directly: it asks its ``RunHost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import random as _random
import uuid as _uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, overload

from typing_extensions import ParamSpec

from . import _current
from ._aio import within
from ._clock import Clock
from ._codec import convert, encode, loads, return_hint
from ._journal import (
    SLEEP_STARTED,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_STARTED,
    VALUE,
    WAIT_COMPLETED,
    WAIT_STARTED,
    RunJournal,
    attempts,
    completed_payload,
    family,
    payload,
    user_wait_id,
)
from ._numbers import seconds as finite_seconds
from ._step_info import StepScope
from ._store.base import EventRecord
from ._workflow import StepOptions, step_options
from .errors import (
    CorruptJournal,
    NonDeterminismError,
    SerializationError,
    StepFailed,
    StepInterrupted,
    StepTimeout,
    WaitTimeout,
    error_from_record,
)

P = ParamSpec("P")
R = TypeVar("R")

InputType = Literal["text", "approval", "choice"]
APPROVAL_OPTIONS = [{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}]


class RunHost(Protocol):
    """What the context needs from the runtime for one run."""

    run_id: str
    workflow_name: str
    journal: RunJournal
    clock: Clock
    max_value_bytes: int | None

    async def append(self, position: int, kind: str, name: str, payload: str) -> EventRecord:
        """Journal an event and wait until it is committed."""
        ...

    def append_nowait(self, position: int, kind: str, name: str, payload: str) -> None:
        """Journal the event that ends a durable call (not kept in the running journal):
        it is committed before any later write of this run."""
        ...

    async def suspend(self, status: str, deadline: float | None, message: str | None) -> None:
        """Wait until ``deadline`` passes or a message called ``message`` arrives."""
        ...

    def check_running(self) -> None:
        """Raise if the run must stop (cancelled, or already found non-deterministic)."""
        ...

    def fatal(self, error: NonDeterminismError | CorruptJournal) -> None:
        """Record an error the workflow may not swallow: the run fails with it."""
        ...

    def working(self) -> contextlib.AbstractContextManager[None]:
        """Mark the run busy (a step body is running) for as long as the block lasts."""
        ...


class WorkflowContext:
    """The handle a workflow uses for every durable call."""

    def __init__(self, host: RunHost) -> None:
        self._host = host
        self._next_position = 0

    @property
    def run_id(self) -> str:
        return self._host.run_id

    @property
    def workflow_name(self) -> str:
        return self._host.workflow_name

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
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(
        self, name: str, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(
        self, name: str, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...

    def step(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:  # type: ignore[misc]
        """Run ``fn(*args, **kwargs)`` as a journaled step (optionally named first).

        The result is journaled before this returns and committed before any
        later write of the run (the next step's start, a sleep, the run's
        end); on replay the stored result is returned without calling ``fn``.
        Sync functions run in a worker thread.
        """
        explicit: str | None = None
        if args and isinstance(args[0], str):
            explicit, args = args[0], args[1:]
        if not args or not callable(args[0]):
            raise TypeError(
                "ctx.step needs a function: ctx.step(fn, *args) or ctx.step('name', fn, *args)"
            )
        plan = _step_plan(args[0])
        name = explicit or plan.name
        position = self._take_position("step", name)
        return self._run_step(position, name, plan, args[1:], kwargs)

    async def _run_step(
        self,
        position: int,
        name: str,
        plan: _StepPlan,
        args: Sequence[Any],
        kwargs: dict[str, Any],
    ) -> Any:
        host = self._host
        fn, options, hint = plan.fn, plan.options, plan.hint
        try:
            while True:
                events = host.journal.at(position)
                for event in events:
                    if event.kind == STEP_COMPLETED:
                        return convert(self._read(event)["result"], hint)
                    if event.kind == STEP_FAILED:
                        final = self._read(event).get("final")
                        if final is not None:
                            raise error_from_record(final)
                last = events[-1] if events else None
                if last is not None and last.kind == STEP_STARTED and options.at_most_once:
                    error = StepInterrupted(
                        f"at-most-once step {name!r} (position {position}) started earlier and"
                        " never finished, so it was not run again; check the external system"
                        " for its effect and decide in the workflow"
                    )
                    await self._fail_step(position, name, error)
                if last is not None and last.kind == STEP_FAILED:
                    retry_at = float(self._read(last)["retry_at"])
                    while host.clock.now() < retry_at:
                        await host.suspend("sleeping", retry_at, None)
                prior = attempts(host.journal.all_at(position))
                started = await host.append(
                    position, STEP_STARTED, name, f'{{"attempt":{prior.gate_count + 1}}}'
                )
                info = StepScope(
                    host.run_id, host.workflow_name, name, position, prior, started.created_at
                )
                try:
                    with host.working():
                        if plan.is_async and options.timeout is None:
                            # The common case, without a task: a coroutine function awaited here.
                            step_token = _current.step.set(info)
                            context_token = _current.context.set(None)
                            try:
                                value = await fn(*args, **kwargs)
                            finally:
                                _current.context.reset(context_token)
                                _current.step.reset(step_token)
                        else:
                            value = await _invoke_apart(plan, args, kwargs, info)
                except Exception as exc:
                    failures = attempts(events).failure_count + 1
                    error_record = _error_record(exc)
                    if options.retry.should_retry(failures, exc):
                        retry_at = host.clock.now() + options.retry.delay_after(failures)
                        failure = {
                            "attempt": info.attempt,
                            "error": error_record,
                            "retry_at": retry_at,
                        }
                        await host.append(position, STEP_FAILED, name, encode(failure))
                        continue
                    failed = StepFailed(
                        name, error_record["type"], error_record["message"], info.attempt
                    )
                    await self._fail_step(position, name, failed, error_record)
                try:
                    text = encode(value, host.max_value_bytes)
                    # What replay will return: the stored JSON read back by the return type.
                    if type(value) in _AS_STORED and (hint is Any or hint is type(value)):
                        result = value
                    else:
                        result = convert(loads(text), hint)
                except SerializationError as exc:
                    await self._fail_step(
                        position,
                        name,
                        SerializationError(
                            f"step {name!r} returned a value it cannot store: {exc}"
                        ),
                    )
                # Not awaited: the run's next write (a step's start, a sleep, its end) commits
                # after it, and no effect of the run escapes before that write is committed.
                host.append_nowait(position, STEP_COMPLETED, name, completed_payload(text))
                return result
        finally:
            host.journal.settle(position)

    async def _fail_step(
        self,
        position: int,
        name: str,
        error: Exception,
        cause: dict[str, Any] | None = None,
    ) -> Any:
        """Journal the step's final failure and raise it as replay will."""
        record = error.to_record() if hasattr(error, "to_record") else _error_record(error)
        failure = {"error": cause or record, "final": record}
        await self._host.append(position, STEP_FAILED, name, encode(failure))
        raise error_from_record(record)

    # -- time ----------------------------------------------------------------

    async def sleep(self, duration: float | dt.timedelta) -> None:
        """Sleep durably: after a restart only the time left is waited."""
        raw = duration.total_seconds() if isinstance(duration, dt.timedelta) else duration
        length = finite_seconds("ctx.sleep's duration", raw, zero_ok=True)
        await self._sleep(lambda now: now + length)

    async def sleep_until(self, moment: dt.datetime) -> None:
        """Sleep durably until ``moment`` (a timezone-aware datetime)."""
        if moment.tzinfo is None:
            raise ValueError(
                "ctx.sleep_until needs a timezone-aware datetime,"
                " e.g. datetime.now(timezone.utc) + timedelta(hours=1)"
            )
        await self._sleep(lambda now: moment.timestamp())

    async def _sleep(self, wake_at_from: Callable[[float], float]) -> None:
        host = self._host
        position = self._take_position("sleep", "sleep")
        events = host.journal.at(position)
        if events:
            wake_at = float(self._read(events[0])["wake_at"])
        else:
            wake_at = wake_at_from(host.clock.now())
            await host.append(position, SLEEP_STARTED, "sleep", encode({"wake_at": wake_at}))
        while host.clock.now() < wake_at:
            await host.suspend("sleeping", wake_at, None)
        host.journal.settle(position)

    # -- waiting for people and events --------------------------------------

    async def wait_for_event(
        self, name: str, *, timeout: float | dt.timedelta | None = None
    ) -> Any:
        """Wait for ``rt.send_event(run_id, name, payload)`` and return the payload.

        Events sent before the run waits are kept and delivered in order, one
        per wait. With ``timeout`` (seconds) it raises ``WaitTimeout``.
        """
        position = self._take_position("wait", name)
        return await self._wait(position, name, timeout, {})

    async def wait_for_user(
        self,
        question: str,
        *,
        input_type: InputType = "text",
        options: Sequence[dict[str, str] | str] | None = None,
        timeout: float | dt.timedelta | None = None,
    ) -> Any:
        """Ask a person and wait for ``rt.respond(run_id, value)``.

        ``approval`` (options default to yes/no) and ``choice`` answers are one
        of the option ids; ``text`` answers are any JSON value.
        """
        choices = _normalize_options(input_type, options)
        position = self._take_position("wait", user_wait_id(position=self._next_position))
        details = {"question": question, "input_type": input_type, "options": choices}
        return await self._wait(position, user_wait_id(position), timeout, details)

    async def _wait(
        self,
        position: int,
        name: str,
        timeout: float | dt.timedelta | None,
        details: dict[str, Any],
    ) -> Any:
        host = self._host
        try:
            events = host.journal.at(position)
            for event in events:
                if event.kind == WAIT_COMPLETED:
                    return _wait_outcome(self._read(event))
            if events:
                deadline = self._read(events[0]).get("deadline")
            else:
                raw = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout
                seconds = None if raw is None else finite_seconds("a wait's timeout", raw)
                deadline = None if seconds is None else host.clock.now() + seconds
                started = encode({**details, "deadline": deadline, "timeout": seconds})
                await host.append(position, WAIT_STARTED, name, started)
            while True:
                message = host.journal.take_message(name)
                if message is not None:
                    # Read before it is copied: a corrupt message is blamed on its own
                    # row, and no new row repeats it.
                    value = self._read(message)
                    answered = f'{{"message":{message.seq},"value":{message.payload}}}'
                    await host.append(position, WAIT_COMPLETED, name, answered)
                    return _wait_outcome({"value": value})
                if deadline is not None and host.clock.now() >= deadline:
                    error = WaitTimeout(f"no {_describe_wait(name)} arrived before the deadline")
                    timed_out = encode({"timed_out": True, "error": error.to_record()})
                    await host.append(position, WAIT_COMPLETED, name, timed_out)
                    _wait_outcome({"timed_out": True, "error": error.to_record()})
                await host.suspend("waiting", deadline, name)
        finally:
            host.journal.settle(position)

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


def _error_record(exc: BaseException) -> dict[str, Any]:
    return {
        "code": getattr(exc, "code", "STEP_ERROR"),
        "type": type(exc).__name__,
        "message": str(exc),
    }


class _StepPlan(NamedTuple):
    """What ``ctx.step`` needs to know about a function, worked out once per function."""

    fn: Callable[..., Any]
    options: StepOptions
    name: str
    hint: Any
    is_async: bool  # a coroutine function (else it runs in a worker thread)


def _step_plan(target: Callable[..., Any]) -> _StepPlan:
    """Worked out once per function and kept on the function itself, so that a closure
    made for one call (``ctx.step("s", lambda: ...)``) and what it captured are freed
    with its run (a cache keyed by function kept every one alive)."""
    kept = getattr(target, _FACTS_ATTR, None)
    # Whose they are, too: functools.wraps copies a function's attributes onto its
    # wrapper, and a @durable.step wrapper has options of its own.
    if kept is not None and kept[0] == id(target):
        return _StepPlan(step_options(target)[0], *kept[1:])
    fn, options = step_options(target)
    name = options.name or getattr(fn, "__qualname__", None) or repr(fn)
    facts = (options, name, return_hint(fn), inspect.iscoroutinefunction(fn))
    with contextlib.suppress(AttributeError, TypeError):  # a bound method, a builtin
        # Not the function itself in what is kept on it: that cycle would wait for the GC.
        setattr(target, _FACTS_ATTR, (id(target), *facts))
    return _StepPlan(fn, *facts)


_FACTS_ATTR = "__durable_step_facts__"


# Values whose stored JSON reads back as the very same value.
_AS_STORED = frozenset({int, str, bool, type(None)})


async def _invoke_apart(
    plan: _StepPlan,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    info: StepScope,
) -> Any:
    """Run a step body in a task (for a timeout) or a worker thread (a sync function)."""
    fn, timeout = plan.fn, plan.options.timeout

    def enter() -> None:
        _current.step.set(info)
        _current.context.set(None)

    if plan.is_async:

        async def body() -> Any:
            enter()
            return await fn(*args, **kwargs)

        task: asyncio.Future[Any] = asyncio.ensure_future(body())
    else:

        def call() -> Any:
            enter()
            return fn(*args, **kwargs)

        task = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        value = await (task if timeout is None else within(task, timeout))
    except TimeoutError:  # not the builtin TimeoutError before Python 3.11
        if not task.cancelled():
            raise
        raise StepTimeout(
            f"step {info.step!r} attempt {info.attempt} took longer than its {timeout}s timeout"
        ) from None
    if inspect.isawaitable(value):
        value = await value
    return value
