"""``WorkflowContext``: the handle a workflow makes every durable call through.

A thin class over the run's host: each kind of durable call has its own module
(``steps``, ``time``, ``values``, ``waits``, ``composition``, ``race``, ``state``,
``stream``, ``patch``), and each method here hands its call to that module. Each
call takes the next position of its run when it is made; if the journal already
has that position, the call replays it, otherwise it runs and journals it. The
context never touches storage directly: it asks its ``RunHost``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid as _uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar, overload

from typing_extensions import ParamSpec

from durable.workflow import composition, patch, race, steps, stream, time, values, waits
from durable.workflow.calls import Calls
from durable.workflow.composition import ChildHandle
from durable.workflow.decorators import Workflow
from durable.workflow.host import RunHost
from durable.workflow.logs import WorkflowLogger
from durable.workflow.state import WorkflowState
from durable.workflow.waits import InputType

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class WorkflowContext:
    """The handle a workflow uses for every durable call."""

    def __init__(self, host: RunHost) -> None:
        self._calls = Calls(host)
        self._patches: set[str] = set()
        self._state: WorkflowState | None = None
        self._logger: WorkflowLogger | None = None

    @property
    def state(self) -> WorkflowState:
        """Durable key-value state others can read (``rt.get_state``): every change is
        journaled and a replay rebuilds it."""
        if self._state is None:
            self._state = WorkflowState(self._calls)
        return self._state

    @property
    def run_id(self) -> str:
        return self._calls.host.run_id

    @property
    def workflow_name(self) -> str:
        return self._calls.host.workflow_name

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger for workflow code (``durable.workflow.<name>``) that stays quiet while
        the run replays, so a line is not logged again on every replay; its records
        carry ``run_id`` and ``workflow``."""
        if self._logger is None:
            self._logger = WorkflowLogger(self._calls)
        return self._logger

    @property
    def is_replaying(self) -> bool:
        """True while the workflow re-executes calls its journal already holds (after a
        restart, or a rebuild from the journal): guard prints and log lines with it so
        they are not repeated on every replay."""
        return self._calls.replaying

    def __repr__(self) -> str:
        return f"<WorkflowContext run={self.run_id!r} workflow={self.workflow_name!r}>"

    def _positions_used(self) -> int:
        """How many positions the workflow's durable calls have taken so far."""
        return self._calls.next_position

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
        return steps.step(self._calls, args, kwargs)

    # -- time ----------------------------------------------------------------

    # Durable calls take their position when they are called, not when first awaited, so
    # calls passed to ctx.parallel, ctx.first or asyncio.gather number in argument order.

    def sleep(self, duration: float | dt.timedelta) -> Coroutine[Any, Any, None]:
        """Sleep durably: after a restart only the time left is waited."""
        return time.sleep(self._calls, duration)

    def sleep_until(self, moment: dt.datetime) -> Coroutine[Any, Any, None]:
        """Sleep durably until ``moment`` (a timezone-aware datetime)."""
        return time.sleep_until(self._calls, moment)

    # -- waiting for people and events --------------------------------------

    def wait_for_event(
        self, name: str, *, timeout: float | dt.timedelta | None = None
    ) -> Coroutine[Any, Any, Any]:
        """Wait for ``rt.send_event(run_id, name, payload)`` and return the payload.

        Events sent before the run waits are kept and delivered in order, one
        per wait. With ``timeout`` (seconds) it raises ``WaitTimeout``; ``timeout=0``
        returns an event already there or raises at once (journaled either way).
        """
        return waits.wait_for_event(self._calls, name, timeout)

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
        return waits.wait_for_user(self._calls, question, input_type, options, timeout)

    # -- values that must not change on replay ------------------------------

    def now(self) -> dt.datetime:
        """The current time (UTC), journaled: replay returns the same moment."""
        return time.now(self._calls)

    def uuid4(self) -> _uuid.UUID:
        """A random UUID, journaled: replay returns the same one."""
        return values.uuid4(self._calls)

    def random(self) -> float:
        """A random float in [0, 1), journaled: replay returns the same one."""
        return values.random(self._calls)

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
        return composition.start_child(self._calls, wf, args, kwargs, run_id)

    def _call_child(
        self, wf: Workflow[P, R], args: Sequence[Any], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, R]:
        """``await wf(...)`` in workflow code: the child's result (``Workflow.__call__``)."""
        return composition.call_child(self._calls, wf, args, kwargs)

    def send_event(self, run_id: str, name: str, payload: Any = None) -> Coroutine[Any, Any, None]:
        """Send an event to another run's ``wait_for_event(name)``, exactly once: the send
        is journaled here, so a replay or a crash never sends it again. A run that does
        not exist raises ``RunNotFound``, one that has ended ``DurableError`` (the same
        on every replay)."""
        return composition.send_event(self._calls, run_id, name, payload)

    async def parallel(self, *awaitables: Awaitable[Any]) -> list[Any]:
        """Await durable calls together; their values in argument order. Every call runs
        to its end; if any raised, the first of them (in argument order) is raised."""
        return await race.parallel(list(awaitables))

    async def gather(self, **awaitables: Awaitable[Any]) -> dict[str, Any]:
        """``parallel`` by name: a dict of the calls' values under their keywords."""
        results = await race.parallel(list(awaitables.values()))
        return dict(zip(awaitables, results, strict=True))

    def first(self, *awaitables: Awaitable[Any]) -> Coroutine[Any, Any, tuple[int, Any]]:
        """The index and value of the first call to finish; the others are cancelled.
        Which one won is journaled, so a replay takes the same branch even when all of
        them are in the journal by then (``asyncio.wait(FIRST_COMPLETED)`` cannot)."""
        return race.first(self._calls, list(awaitables))

    # -- streams and patches -------------------------------------------------

    async def write_stream(self, key: str, value: Any) -> None:
        """Append ``value`` to the run's stream ``key`` (journaled: written once however
        often the run replays); ``rt.read_stream(run_id, key)`` reads it live, as
        ``StreamItem``s."""
        await stream.write(self._calls, key, value)

    async def close_stream(self, key: str) -> None:
        """End the stream ``key``: its readers stop once they have read what it holds."""
        await stream.close(self._calls, key)

    def patched(self, patch_id: str) -> bool:
        """True where this run reaches the call under code that has it (journaled), False
        for a run whose journal already went past this point without it; fixed per run.

        Deploy ``if ctx.patched("new-step"): <new code> else: <old code>`` so runs in
        flight keep replaying the old branch while new runs take the new one.
        """
        return patch.patched(self._calls, self._patches, patch_id)
