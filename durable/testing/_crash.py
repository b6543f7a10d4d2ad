"""Crash simulation without subprocesses."""

from __future__ import annotations

from .._runtime import Runtime
from ..errors import DurableError


async def crash(runtime: Runtime) -> Runtime:
    """Abandon every in-flight run of ``runtime`` at once, as a SIGKILL would, and
    return a new, open runtime on the same file that resumes them.

    Nothing more is written for the abandoned runs (an in-flight step's end is
    never journaled, so its next attempt sees ``gated_not_completed``), and
    the old runtime's leases are not released: the new runtime takes them
    over because it reopens with the same identity. Close the returned
    runtime yourself (or let the ``durable_runtime`` fixture do it).
    """
    if str(runtime.path) == ":memory:":
        raise DurableError(
            "crash() needs a journal file to reopen; ':memory:' ends with its runtime"
        )
    await runtime.abandon()
    reopened = Runtime(
        runtime.path,
        clock=runtime.clock,
        identity=runtime.owner,
        lease_seconds=runtime.lease_seconds,
        poll_interval=runtime.poll_interval,
        always_replay=runtime.always_replay,
        durability=runtime.durability,
    )
    await reopened.open()
    return reopened
