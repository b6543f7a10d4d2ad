"""Options checked where they are given, so that a wrong one fails at once with the
rule, not later in a run (``RetryPolicy`` checks its own fields in ``retry.py``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from durable._base.ids import check_name
from durable.workflow.decorators import Workflow


def flag(name: str, value: object) -> None:
    """``TypeError`` naming ``name`` unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r:.60}")


def check_runtime_options(
    path: object, clock: object, recover: object, always_replay: object, identity: object
) -> None:
    """``Runtime(...)``'s options that are not numbers (those ``_numbers`` checks)."""
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
    flag("Runtime(recover=...)", recover)
    flag("Runtime(always_replay=...)", always_replay)
    if identity is not None:
        check_name("Runtime(identity=...)", identity)


def runtime_workflows(workflows: object) -> list[Workflow[Any, Any]] | None:
    """``Runtime(workflows=...)`` as a list of workflows (None: every registered one)."""
    if workflows is None:
        return None
    if isinstance(workflows, (str, bytes)) or not isinstance(workflows, Sequence):
        raise TypeError(
            f"Runtime(workflows=...) takes a list of @durable.workflow functions, got"
            f" {workflows!r:.60}"
        )
    for wf in workflows:
        if not isinstance(wf, Workflow):
            raise TypeError(
                f"Runtime(workflows=...) takes @durable.workflow functions; {wf!r:.60} is not"
                " one (pass the decorated function, not its name)"
            )
    return list(workflows)
