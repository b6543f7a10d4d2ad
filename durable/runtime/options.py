"""``RuntimeOptions``: what a runtime was opened with, checked where it is built, so
that a wrong option fails at once with the rule, not later in a run (``RetryPolicy``
checks its own fields in ``retry.py``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from durable._base.ids import check_name
from durable._base.numbers import count, seconds
from durable.workflow.decorators import Workflow, registered, registry_keys

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider


@dataclasses.dataclass(frozen=True)
class RuntimeOptions:
    """The settings of one runtime, as ``Runtime(...)`` documents them; its parts read
    them from here. ``identity`` is the name it owns runs under: the one given, or one
    made for this runtime."""

    identity: str
    recover: bool = True
    durability: str = "full"
    lease_seconds: float = 15.0
    poll_interval: float = 0.25
    always_replay: bool = False
    writer: str | None = None
    max_in_memory_runs: int = 10_000
    max_value_bytes: int | None = 10_000_000
    max_recoveries: int = 10
    workflows: tuple[Workflow[Any, Any], ...] | None = None
    """The workflows this runtime executes (None: every registered one)."""
    tracer_provider: TracerProvider | None = None

    def __post_init__(self) -> None:
        flag("Runtime(recover=...)", self.recover)
        flag("Runtime(always_replay=...)", self.always_replay)
        check_name("Runtime(identity=...)", self.identity)
        seconds("lease_seconds", self.lease_seconds)
        seconds("poll_interval", self.poll_interval)
        count("max_in_memory_runs", self.max_in_memory_runs)
        count("max_value_bytes", self.max_value_bytes, none_ok=True)
        count("max_recoveries", self.max_recoveries)
        check_workflows(self.workflows)

    def keywords(self) -> dict[str, Any]:
        """The keyword arguments of ``Runtime(...)`` that open a runtime alike."""
        given = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        workflows = self.workflows
        return given | {"workflows": None if workflows is None else list(workflows)}

    def executes(self) -> list[tuple[str, str]]:
        """The (name, version) pairs of the workflows this runtime runs."""
        if self.workflows is None:
            return registry_keys()
        return [(wf.name, wf.version or "1") for wf in self.workflows]

    def executable(self, name: str, version: str | None) -> Workflow[Any, Any] | None:
        """The registered workflow of that name and version, if this runtime runs it."""
        wf = registered(name, version)
        if wf is None or self.workflows is None or wf in self.workflows:
            return wf
        return None


def flag(name: str, value: object) -> None:
    """``TypeError`` naming ``name`` unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r:.60}")


def check_path_and_clock(path: object, clock: object) -> None:
    """``Runtime(...)``'s path and clock, the options that are not ``RuntimeOptions``."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"Runtime's path must be a file path or a postgresql:// URL, got {path!r:.60}"
        )
    if clock is not None and not all(
        callable(getattr(clock, method, None)) for method in ("now", "sleep_until")
    ):
        raise TypeError(
            f"Runtime(clock=...) takes a durable clock (now() and sleep_until()), such as"
            f" durable.testing's virtual clock; got {clock!r:.60}"
        )


def workflow_tuple(workflows: object) -> tuple[Workflow[Any, Any], ...] | None:
    """``Runtime(workflows=...)`` as a tuple of workflows (None: every registered one)."""
    if workflows is None:
        return None
    if isinstance(workflows, (str, bytes)) or not isinstance(workflows, Sequence):
        raise TypeError(
            f"Runtime(workflows=...) takes a list of @durable.workflow functions, got"
            f" {workflows!r:.60}"
        )
    return tuple(workflows)


def check_workflows(workflows: Sequence[object] | None) -> None:
    for wf in workflows or ():
        if not isinstance(wf, Workflow):
            raise TypeError(
                f"Runtime(workflows=...) takes @durable.workflow functions; {wf!r:.60} is not"
                " one (pass the decorated function, not its name)"
            )
