"""Steps: ``ctx.step`` and awaited ``@durable.step`` functions.

``step`` takes the position; ``run_step`` replays the step from the journal or
runs its body (attempts, retries, timeouts, worker threads), journaling each
attempt's start, a retry's failure and the result (committed with the run's
next write).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, NamedTuple, NoReturn

from durable._base.aio import within
from durable._base.codec import convert, encode, loads, return_hint
from durable._base.ids import check_name
from durable.errors import (
    CorruptJournal,
    SerializationError,
    StepFailed,
    StepInterrupted,
    StepTimeout,
    error_from_record,
)
from durable.journal.kinds import STEP, STEP_COMPLETED, STEP_FAILED, STEP_STARTED
from durable.journal.records import EventRecord
from durable.journal.run_journal import attempts, completed_payload
from durable.retry import RetryPolicy
from durable.workflow import current as _current
from durable.workflow.attempt_record import started_payload, traceback_text
from durable.workflow.branches import became_ready
from durable.workflow.budget import gate
from durable.workflow.callables import behind, callable_name, is_async, is_async_generator
from durable.workflow.calls import Calls
from durable.workflow.decorators import StepOptions, step_options
from durable.workflow.step_info import StepScope
from durable.workflow.stream import end_streams, write_stream


def step(calls: Calls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Coroutine[Any, Any, Any]:
    """``ctx.step``'s arguments read, and the step's position taken: what awaits it."""
    explicit: str | None = None
    if args and isinstance(args[0], str):
        explicit, args = check_name("a step's name (ctx.step('name', ...))", args[0]), args[1:]
    if explicit is not None and len(args) == 1 and not kwargs and _is_awaitable(args[0]):
        return _checkpoint(calls, explicit, args[0])
    if not args or not callable(args[0]):
        raise TypeError(
            "ctx.step needs a function: ctx.step(fn, *args) or ctx.step('name', fn, *args),"
            " or a name and an awaitable: ctx.step('name', fetch(url))"
        )
    plan = step_plan(args[0])
    name = explicit or plan.name
    position = calls.take(STEP, name)
    return run_step(calls, position, name, plan, args[1:], kwargs)


def _checkpoint(calls: Calls, name: str, awaitable: Awaitable[Any]) -> Coroutine[Any, Any, Any]:
    """``ctx.step("name", awaitable)``: one attempt; on replay it is closed unawaited."""
    try:
        position = calls.take(STEP, name)
    except BaseException:
        _close(awaitable)  # refused: it will never be awaited
        raise
    plan, awaited = awaitable_plan(name, awaitable)

    async def checkpoint() -> Any:
        try:
            return await run_step(calls, position, name, plan, (), {})
        finally:
            if not awaited[0]:
                _close(awaitable)  # replayed: its value is in the journal

    return checkpoint()


def _close(awaitable: Awaitable[Any]) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


def _is_awaitable(value: Any) -> bool:
    return inspect.isawaitable(value) and not callable(value)


async def run_step(
    calls: Calls,
    position: int,
    name: str,
    plan: StepPlan,
    args: Sequence[Any],
    kwargs: dict[str, Any],
) -> Any:
    """The step at ``position``: its journaled end, or its attempts until one returns,
    or raises for good."""
    journal = calls.host.journal
    try:
        await gate(calls, position, f"{STEP} {name!r}")
        while True:
            events = journal.at(position)
            ended = await _replayed_end(calls, position, events)
            if ended is not None:
                return convert(calls.read(ended)["result"], plan.hint)
            await _before_attempt(calls, position, name, plan.options, events)
            result = await _attempt(calls, position, name, plan, args, kwargs, events)
            if result is not _RETRY:
                return result
    finally:
        journal.settle(position)


async def _replayed_end(
    calls: Calls, position: int, events: list[EventRecord]
) -> EventRecord | None:
    """The journaled ``step.completed`` at ``position``, in its turn; a journaled final
    failure is raised in its turn. None: the step has not ended."""
    for event in events:
        if event.kind == STEP_COMPLETED:
            await calls.host.journal.in_turn(position, event)
            became_ready(event.created_at)
            return event
        if event.kind == STEP_FAILED:
            final = calls.read(event).get("final")
            if final is not None:
                await calls.host.journal.in_turn(position, event)
                raise error_from_record(final)
    return None


async def _before_attempt(
    calls: Calls, position: int, name: str, options: StepOptions, events: list[EventRecord]
) -> None:
    """Refuse to run an interrupted at-most-once step again; wait out a retry's delay."""
    host = calls.host
    last = events[-1] if events else None
    if last is not None and last.kind == STEP_STARTED and options.at_most_once:
        error = StepInterrupted(
            f"at-most-once step {name!r} (position {position}) started earlier and"
            " never finished, so it was not run again; check the external system"
            " for its effect and decide in the workflow"
        )
        await fail_step(calls, position, name, error)
    if last is not None and last.kind == STEP_FAILED:
        retry_at = float(calls.read(last)["retry_at"])
        while host.clock.now() < retry_at:
            await host.suspend("sleeping", retry_at, None)


_RETRY: Any = object()
"""What ``_attempt`` returns when the attempt failed and the step is retried."""


async def _attempt(
    calls: Calls,
    position: int,
    name: str,
    plan: StepPlan,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    events: list[EventRecord],
) -> Any:
    """One attempt, journaled: its start, then its result, or a failure (``_RETRY`` if
    the step is retried, else the failure raised for good)."""
    host = calls.host
    try:
        prior = attempts(host.journal.all_at(position))
    except CorruptJournal as error:  # an earlier attempt's entry: fatal, as in Calls.read
        host.fatal(error)
        raise
    started = await host.append(
        position,
        STEP_STARTED,
        name,
        started_payload(prior.gate_count + 1, args, kwargs, host.max_value_bytes),
    )
    info = StepScope(
        host.run_id, host.workflow_name, name, position, prior, started.created_at, host
    )
    span = host.telemetry.step_began(info)
    try:
        with host.working():
            value = await _body(plan, args, kwargs, info)
    except Exception as exc:
        failures = attempts(events).failure_count + 1
        failure_record = error_record(exc)
        retried = plan.options.retry.should_retry(failures, exc)
        host.telemetry.step_ended(info, span, exc, retried)
        told = {"attempt": info.attempt, "traceback": traceback_text(exc, host.max_value_bytes)}
        if retried:
            retry_at = host.clock.now() + plan.options.retry.delay_after(failures)
            failure = {**told, "error": failure_record, "retry_at": retry_at}
            await host.append(position, STEP_FAILED, name, encode(failure))
            return _RETRY
        failed = StepFailed(name, failure_record["type"], failure_record["message"], info.attempt)
        await fail_step(calls, position, name, failed, failure_record, told)
    except BaseException as exc:  # cancelled: the attempt neither returned nor failed
        host.telemetry.step_ended(info, span, exc)
        raise
    host.telemetry.step_ended(info, span)
    return await _completed(calls, position, name, value, plan.hint)


async def _completed(calls: Calls, position: int, name: str, value: Any, hint: Any) -> Any:
    """Journal the step's result and return it as replay will."""
    host = calls.host
    try:
        text = encode(value, host.max_value_bytes)
        # What replay will return: the stored JSON read back by the return type.
        if type(value) in _AS_STORED and (hint is Any or hint is type(value)):
            result = value
        else:
            result = convert(loads(text), hint)
    except SerializationError as exc:
        await fail_step(
            calls,
            position,
            name,
            SerializationError(f"step {name!r} returned a value it cannot store: {exc}"),
        )
    # Not awaited: the run's next write (a step's start, a sleep, its end) commits
    # after it, and no effect of the run escapes before that write is committed.
    host.append_nowait(position, STEP_COMPLETED, name, completed_payload(text))
    became_ready(host.clock.now())
    return result


async def _body(
    plan: StepPlan, args: Sequence[Any], kwargs: dict[str, Any], info: StepScope
) -> Any:
    """The body's outcome; the stream values it wrote go to the journal before its end
    does (if it was cancelled, that attempt is void: those not written yet are dropped,
    and the journal says so of the others)."""
    try:
        value = await _invoke(plan, args, kwargs, info)
    except Exception:
        end_streams(info, keep=True)
        raise
    except BaseException:
        end_streams(info, keep=False)
        raise
    end_streams(info, keep=True)
    return value


async def _invoke(
    plan: StepPlan, args: Sequence[Any], kwargs: dict[str, Any], info: StepScope
) -> Any:
    """Run the step's body with ``info`` as the current step."""
    if plan.is_async and plan.options.timeout is None:
        # The common case, without a task: a coroutine function awaited here.
        step_token = _current.step.set(info)
        context_token = _current.context.set(None)
        try:
            return await plan.fn(*args, **kwargs)
        finally:
            _current.context.reset(context_token)
            _current.step.reset(step_token)
    return await _invoke_apart(plan, args, kwargs, info)


async def fail_step(
    calls: Calls,
    position: int,
    name: str,
    error: Exception,
    cause: dict[str, Any] | None = None,
    told: dict[str, Any] | None = None,
) -> NoReturn:
    """Journal the step's final failure and raise it as replay will; ``told`` adds what
    people read (the attempt, its traceback)."""
    record = error.to_record() if hasattr(error, "to_record") else error_record(error)
    failure = {**(told or {}), "error": cause or record, "final": record}
    await calls.host.append(position, STEP_FAILED, name, encode(failure))
    raise error_from_record(record)


def error_record(exc: BaseException) -> dict[str, Any]:
    return {
        "code": getattr(exc, "code", "STEP_ERROR"),
        "type": type(exc).__name__,
        "message": str(exc),
    }


class StepPlan(NamedTuple):
    """What ``ctx.step`` needs to know about a function, worked out once per function."""

    fn: Callable[..., Any]
    options: StepOptions
    name: str
    hint: Any
    is_async: bool  # a coroutine function (else it runs in a worker thread)


def step_plan(target: Callable[..., Any]) -> StepPlan:
    """Worked out once per function and kept on the function itself, so that a closure
    made for one call (``ctx.step("s", lambda: ...)``) and what it captured are freed
    with its run (a cache keyed by function kept every one alive)."""
    kept = getattr(target, _FACTS_ATTR, None)
    # Whose they are, too: functools.wraps copies a function's attributes onto its
    # wrapper, and a @durable.step wrapper has options of its own.
    if kept is not None and kept[0] == id(target):
        return StepPlan(step_options(target)[0], *kept[1:])
    fn, options = step_options(target)
    name = options.name or callable_name(fn)
    if is_async_generator(fn):
        # Each value it yields goes to the stream named after the step, as it comes; the
        # step returns the list of them.
        return StepPlan(_streamed(fn), options, name, list[Any], True)
    facts = (options, name, return_hint(behind(fn)), is_async(fn))
    if inspect.isfunction(target):  # not a user's object, nor a bound method or a builtin
        # Not the function itself in what is kept on it: that cycle would wait for the GC.
        setattr(target, _FACTS_ATTR, (id(target), *facts))
    return StepPlan(fn, *facts)


_FACTS_ATTR = "__durable_step_facts__"


# Values whose stored JSON reads back as the very same value.
_AS_STORED = frozenset({int, str, bool, type(None)})


async def _invoke_apart(
    plan: StepPlan,
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

        async def in_thread() -> Any:
            value = await asyncio.to_thread(call)
            if inspect.isawaitable(value):  # ctx.step("s", lambda: fetch(url))
                enter()  # what it awaits is the step's body too
                value = await value
            return value

        task = asyncio.ensure_future(in_thread())
    try:
        return await (task if timeout is None else within(task, timeout))
    except TimeoutError:  # not the builtin TimeoutError before Python 3.11
        if not task.cancelled():
            raise
        raise StepTimeout(
            f"step {info.step!r} attempt {info.attempt} took longer than its {timeout}s timeout"
        ) from None


def _streamed(generator: Callable[..., Any]) -> Callable[..., Any]:
    async def stream(*args: Any, **kwargs: Any) -> list[Any]:
        scope = _current.step.get()
        assert scope is not None  # run_step sets it before the body runs
        key = scope.step  # the step's journal name, explicit or the function's
        values = []
        async for value in generator(*args, **kwargs):
            await write_stream(key, value)
            values.append(value)
        return values

    return stream


def awaitable_plan(name: str, awaitable: Awaitable[Any]) -> tuple[StepPlan, list[bool]]:
    """A step whose body awaits ``awaitable`` (``ctx.step("name", awaitable)``): one
    attempt, as an awaitable cannot be awaited twice. The flag says whether it was."""
    awaited = [False]

    async def body() -> Any:
        awaited[0] = True
        return await awaitable

    options = StepOptions(name=name, retry=RetryPolicy(max_attempts=1))
    return StepPlan(body, options, name, Any, True), awaited
