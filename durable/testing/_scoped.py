"""Declarations that last as long as a block: for tests that declare workflows and queues."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from durable.workflow import decorators as _workflow
from durable.workflow import queues as _queues


@contextlib.contextmanager
def scoped_workflows() -> Iterator[None]:
    """Forget the workflows and queues declared inside the block when it ends.

    Every runtime executes every registered workflow (unless told which), so a cron
    schedule declared by one test would otherwise start runs in the tests after it.
    """
    workflows = _workflow.registry_snapshot()
    queues = _queues.declared_snapshot()
    try:
        yield
    finally:
        _workflow.restore_registry(workflows)
        _queues.restore_declared(queues)
