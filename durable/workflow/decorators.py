"""``@workflow`` and ``@step``: decorators that keep signatures, and the registry."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, Generic, TypeVar, cast, overload

from typing_extensions import ParamSpec

from durable._base.codec import convert, loads, parameter_hints
from durable._base.ids import NAME_LIMIT, check_name
from durable._base.numbers import seconds
from durable.errors import CorruptJournal, DurableError
from durable.journal.budget import Budget
from durable.retry import RetryPolicy
from durable.workflow import current as _current
from durable.workflow.callables import callable_name, is_async, is_async_generator
from durable.workflow.queues import Cron, Queue, queue_named

if TYPE_CHECKING:
    from durable.workflow.context import WorkflowContext

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_VERSION = "1"


class Workflow(Generic[P, R]):
    """A registered workflow. Calling it inside a runtime starts a run and awaits its result."""

    __name__: str  # the function's, as functools.update_wrapper copies them
    __qualname__: str

    def __init__(
        self,
        fn: Callable[Concatenate[WorkflowContext, P], Awaitable[R]],
        name: str,
        version: str,
        timeout: float | None = None,
        queue: Queue | None = None,
        cron: Cron | None = None,
        webhook_secret: str | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.version = version
        self.timeout = timeout
        """Seconds from a run's start to its deadline (None: no deadline)."""
        self.queue = queue
        """The queue every run of this workflow goes through, if any."""
        self.cron = cron
        """The schedule this workflow runs on, if any."""
        self.webhook_secret = webhook_secret
        """With it, ``durable serve`` starts a run for each signed ``POST /webhooks/<name>``."""
        self.budget = budget
        """What each run (with the runs below it) may spend before a person says more."""
        functools.update_wrapper(self, fn)
        self._parameters: list[tuple[str, Any]] | None = None
        self._signature: inspect.Signature | None = None

    def signature(self) -> inspect.Signature:
        """The function's signature, the context first, computed once."""
        if self._signature is None:
            self._signature = inspect.signature(self.fn)
        return self._signature

    def parameters(self) -> list[tuple[str, Any]]:
        """(name, type hint) of each parameter after the context, computed once."""
        if self._parameters is None:
            hints = parameter_hints(self.fn)
            names = list(self.signature().parameters)[1:]
            self._parameters = [(name, hints.get(name, Any)) for name in names]
        return self._parameters

    def decode_arguments(self, input_text: str) -> tuple[list[Any], dict[str, Any]]:
        """A run's stored arguments, shaped by the parameter annotations."""
        try:
            data = loads(input_text)
        except ValueError as exc:
            raise CorruptJournal(f"the stored input of the run is unreadable: {exc}") from None
        args: list[Any] = data.get("args") or []
        kwargs: dict[str, Any] = data.get("kwargs") or {}
        parameters = self.parameters()
        if args:
            args = [
                convert(value, parameters[i][1]) if i < len(parameters) else value
                for i, value in enumerate(args)
            ]
        if kwargs:
            hints = dict(parameters)
            kwargs = {key: convert(value, hints.get(key, Any)) for key, value in kwargs.items()}
        return args, kwargs

    def __repr__(self) -> str:
        return f"<durable.workflow {self.name!r} version {self.version!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        """Inside a workflow: run this one as a child and return its result (the child's
        position is taken now, so children passed to ``ctx.parallel`` number in order).
        Inside a runtime: start a run and await its result."""
        ctx = _current.context.get()
        if ctx is not None:
            return ctx._call_child(self, args, kwargs)
        return self._run(args, kwargs)

    async def _run(self, args: Any, kwargs: Any) -> R:
        runtime = _current.runtime.get()
        if runtime is None:
            raise DurableError(
                f"workflow {self.name!r} was called outside a runtime; call it inside"
                " `async with durable.Runtime('app.db'):`, use `await rt.start(...)`,"
                " or run it from a script with durable.run(...)"
            )
        handle = await runtime.start_run(self, args, kwargs)
        result: R = await handle.result()
        return result


_registry: dict[tuple[str, str], Workflow[Any, Any]] = {}


def registered(name: str, version: str | None) -> Workflow[Any, Any] | None:
    return _registry.get((name, version or DEFAULT_VERSION))


def registered_spec(spec: str) -> Workflow[Any, Any] | None:
    """The workflow ``NAME`` or ``NAME@VERSION`` names (the CLI's and the API's form)."""
    name, _, version = spec.partition("@")
    return registered(name, version or None)


@overload
def workflow(fn: Callable[Concatenate[WorkflowContext, P], Awaitable[R]], /) -> Workflow[P, R]: ...


@overload
def workflow(
    *,
    name: str | None = None,
    version: str = DEFAULT_VERSION,
    timeout: float | None = None,
    queue: Queue | str | None = None,
    cron: str | None = None,
    tz: str = "UTC",
    webhook: bool = False,
    webhook_secret: str | None = None,
    budget: Budget | None = None,
) -> Callable[[Callable[Concatenate[WorkflowContext, P], Awaitable[R]]], Workflow[P, R]]: ...


def workflow(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    version: str = DEFAULT_VERSION,
    timeout: float | None = None,
    queue: Queue | str | None = None,
    cron: str | None = None,
    tz: str = "UTC",
    webhook: bool = False,
    webhook_secret: str | None = None,
    budget: Budget | None = None,
) -> Any:
    """Register an async function whose first parameter receives the ``WorkflowContext``.

    Runs are stored under ``name`` (default: the function's qualified name)
    and ``version``; a run is resumed only by the workflow with the same name
    and version, so old versions can stay registered to finish their runs.
    ``timeout`` (seconds) gives each run a durable deadline: when it passes, the
    run ends ``failed`` with ``WorkflowTimeout`` and its unfinished children are
    cancelled. ``queue`` (a ``durable.Queue`` or its name) sends every run through
    that queue. ``cron`` (five fields, in time zone ``tz``) starts one run per tick,
    whose argument, if the workflow takes one, is the tick time. ``webhook=True``
    with ``webhook_secret`` (``whsec_`` + base64, as Standard Webhooks have it) lets
    ``durable serve`` start a run for each ``POST /webhooks/<name>`` signed with that
    secret; the run receives the JSON body. ``budget`` (a ``durable.Budget``) caps
    what each run and the runs below it may spend before a person says more.
    """
    if webhook:
        _check_webhook_secret(webhook_secret)
    if webhook_secret is not None and not webhook:
        raise ValueError("webhook_secret=... is for @durable.workflow(webhook=True)")
    if name is not None:
        check_name("@durable.workflow(name=...)", name)
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    check_name("@durable.workflow(version=...)", version)
    deadline = None if timeout is None else seconds("a workflow's timeout", timeout)
    through = None if queue is None else queue_named(queue)
    schedule = None if cron is None else Cron(cron, tz)
    if budget is not None and not isinstance(budget, Budget):
        raise TypeError(f"budget must be a durable.Budget, got {budget!r}")

    def decorate(fn: Callable[..., Any]) -> Workflow[Any, Any]:
        _check_workflow_function(fn)
        label = name or check_name(f"the name of workflow {fn.__qualname__}", fn.__qualname__)
        if schedule is not None:
            _check_cron_function(fn)
            _check_cron_name(label)
        return _register(
            Workflow(fn, label, version, deadline, through, schedule, webhook_secret, budget)
        )

    return decorate(fn) if fn is not None else decorate


def _register(wf: Workflow[Any, Any]) -> Workflow[Any, Any]:
    """Register ``wf`` under its name and version, unless another function has them."""
    key = (wf.name, wf.version)
    existing = _registry.get(key)
    if existing is not None and not _same_definition(existing.fn, wf.fn):
        raise DurableError(
            f"a workflow named {wf.name!r} (version {wf.version!r}) is already registered"
            f" by {existing.fn.__module__}.{existing.fn.__qualname__}; give this one"
            " another name with @durable.workflow(name=...)"
        )
    _registry[key] = wf
    return wf


def _same_definition(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """A re-run of the same ``def`` (a reloaded module, a test defining it again)."""
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def _check_webhook_secret(secret: object) -> None:
    """A webhook secret is what Standard Webhooks senders and verifiers take: ``whsec_``
    and the base64 of at least 24 random bytes. Anything else is refused here, at
    decoration, rather than failing every delivery later."""
    key = b""
    if isinstance(secret, str) and secret.startswith("whsec_"):
        text = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
    if len(key) < 24:
        raise ValueError(
            "@durable.workflow(webhook=True) needs webhook_secret='whsec_' + the base64 of at"
            " least 24 random bytes, as Standard Webhooks senders (Svix, the standardwebhooks"
            " package) take it: make one with 'whsec_' +"
            " base64.b64encode(secrets.token_bytes(32)).decode()"
        )


def _check_workflow_function(fn: Callable[..., Any]) -> None:
    label = getattr(fn, "__qualname__", repr(fn))
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"@durable.workflow needs an `async def` function; {label} is not async."
            " Write `async def` and await durable calls on the context."
        )
    params = list(inspect.signature(fn).parameters.values())
    name = getattr(fn, "__name__", "fn")
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise TypeError(
            f"@durable.workflow function {label} must take the WorkflowContext as its first"
            f" parameter: `async def {name}(ctx: durable.WorkflowContext, ...)`"
        )
    first = params[0]
    if first.name != "ctx" and not _names_the_context(first.annotation):
        rest = "".join(f", {p}" for p in params)
        raise TypeError(
            f"@durable.workflow function {label} must take the WorkflowContext as its first"
            f" parameter, named `ctx` or annotated `durable.WorkflowContext`; its first"
            f" parameter is {first.name!r}, which would receive the context instead of an"
            f" argument. Write `async def {name}(ctx: durable.WorkflowContext{rest})`"
        )


def _check_cron_name(name: str) -> None:
    """A tick's run id is the name, ``@`` and the tick's time (``runtime.scheduler``):
    it must fit the run id rule."""
    longest = len(f"{name}@{dt.datetime(2000, 1, 1, tzinfo=dt.UTC).isoformat()}")
    if longest > NAME_LIMIT:
        raise ValueError(
            f"@durable.workflow(cron=...) names each tick's run <name>@<tick time>, at most"
            f" {NAME_LIMIT} characters; the name {name!r:.60} is {len(name)} characters:"
            f" give it one of at most {NAME_LIMIT - (longest - len(name))} with name=..."
        )


def _check_cron_function(fn: Callable[..., Any]) -> None:
    """A scheduled workflow takes the tick time, or nothing, after the context."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    required = [p for p in params if p.default is inspect.Parameter.empty]
    if (len(params) > 1 and len(required) > 1) or len(required) > 1:
        raise TypeError(
            f"@durable.workflow(cron=...) function {fn.__qualname__} may take one parameter"
            " after the context (it receives the tick time, an aware datetime), not"
            f" {len(required)} required ones"
        )


def _names_the_context(annotation: Any) -> bool:
    """The annotation is ``WorkflowContext``, as a class or as text (postponed annotations)."""
    if isinstance(annotation, str):
        return annotation.rpartition(".")[2] == "WorkflowContext"
    # By name: the context is built on the call kinds, which build on this module.
    return isinstance(annotation, type) and any(
        f"{cls.__module__}.{cls.__qualname__}" == _CONTEXT for cls in annotation.__mro__
    )


_CONTEXT = "durable.workflow.context.WorkflowContext"


@dataclass(frozen=True)
class StepOptions:
    """How a step is run: its journal name, retries, per-attempt timeout, at-most-once."""

    name: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    at_most_once: bool = False


DEFAULT_STEP_OPTIONS = StepOptions()
_OPTIONS_ATTR = "__durable_step__"


def step_options(fn: Callable[..., Any]) -> tuple[Callable[..., Any], StepOptions]:
    """The function to run for ``fn`` and its options (defaults if not decorated)."""
    options = getattr(fn, _OPTIONS_ATTR, None)
    if isinstance(options, StepOptions):
        return cast(Callable[..., Any], fn.__wrapped__), options  # type: ignore[attr-defined]
    return fn, DEFAULT_STEP_OPTIONS


@overload
def step(fn: F, /) -> F: ...


@overload
def step(
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    at_most_once: bool = False,
) -> Callable[[F], F]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    at_most_once: bool = False,
) -> Any:
    """Set a function's step options.

    Awaited inside a workflow, an async step function (or async generator
    function) is journaled exactly as ``ctx.step(fn, ...)``; called anywhere
    else it is a plain call. A sync
    step function runs in a worker thread through ``await ctx.step(fn, ...)``.
    """
    if name is not None:
        check_name("@durable.step(name=...)", name)
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise TypeError(
            f"@durable.step(retry=...) takes a durable.RetryPolicy, got {retry!r:.60};"
            " for example retry=durable.RetryPolicy(max_attempts=3)"
        )
    if timeout is not None:
        timeout = seconds("step timeout", timeout)
    if not isinstance(at_most_once, bool):
        raise TypeError(
            f"@durable.step(at_most_once=...) must be True or False, got {at_most_once!r}"
        )
    options = StepOptions(name, retry or RetryPolicy(), timeout, at_most_once)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        wrapper = _step_wrapper(fn)
        _take_names(wrapper, fn)
        setattr(wrapper, _OPTIONS_ATTR, options)
        return wrapper

    return decorate(fn) if fn is not None else decorate


def _take_names(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> None:
    """``functools.update_wrapper``, and for an object (a callable instance, a partial)
    its class's or function's names rather than its attributes."""
    if isinstance(getattr(fn, "__qualname__", None), str):
        functools.update_wrapper(wrapper, fn)
        return
    functools.update_wrapper(wrapper, fn, updated=())
    wrapper.__qualname__ = callable_name(fn)
    wrapper.__name__ = wrapper.__qualname__.rpartition(".")[2]


def _step_wrapper(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What ``@durable.step`` puts in place of ``fn``: a journaled step when awaited in
    a workflow, a plain call anywhere else."""
    if is_async_generator(fn) or is_async(fn):

        def journaled(*args: Any, **kwargs: Any) -> Any:
            # Not `async def`: inside a workflow the step takes its position now, when
            # it is called, like every durable call (ctx.first relies on it). A
            # generator's step streams what it yields and returns the list of it.
            ctx = _current.context.get()
            if ctx is not None:
                return ctx.step(journaled, *args, **kwargs)
            return fn(*args, **kwargs)

        return journaled if is_async_generator(fn) else _as_coroutine_function(journaled)

    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        if _current.context.get() is not None:
            label = callable_name(fn)
            raise DurableError(
                f"sync step {label} was called directly in a workflow; run it as"
                f" `await ctx.step({label.rpartition('.')[2]}, ...)` so it is journaled"
            )
        return fn(*args, **kwargs)

    return sync_wrapper


def _as_coroutine_function(wrapper: F) -> F:
    """Mark a function that returns a coroutine as a coroutine function, for
    ``inspect.iscoroutinefunction`` (3.12+) and ``asyncio.iscoroutinefunction``."""
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        return cast(F, mark(wrapper))
    import asyncio.coroutines

    wrapper._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return wrapper


def registry_snapshot() -> dict[tuple[str, str], Workflow[Any, Any]]:
    return dict(_registry)


def restore_registry(snapshot: dict[tuple[str, str], Workflow[Any, Any]]) -> None:
    _registry.clear()
    _registry.update(snapshot)


def registry_keys() -> list[tuple[str, str]]:
    """The (name, version) pairs of every registered workflow."""
    return list(_registry)
