"""Crash simulation without subprocesses."""

from __future__ import annotations

import durable


async def crash(runtime: durable.Runtime) -> durable.Runtime:
    """Abandon every in-flight run of ``runtime`` at once, as a SIGKILL would, and
    return a new, open runtime on the same file that resumes them.

    Nothing more is written for the abandoned runs (an in-flight step's end is
    never journaled, so its next attempt sees ``gated_not_completed``), and
    the old runtime's leases are not released: the new runtime takes them
    over because it reopens with the same identity. Close the returned
    runtime yourself (or let the ``durable_runtime`` fixture do it).
    """
    if str(runtime.path) == ":memory:":
        raise durable.DurableError(
            "crash() needs a journal file to reopen; ':memory:' ends with its runtime"
        )
    if runtime.settings is None:
        raise durable.DurableError(
            "crash() reopens a runtime from its path and settings; one made with"
            " Runtime(store=...) cannot be reopened: give it the journal's path or URL"
        )
    await runtime.abandon()
    # Every setting as it was, and the same identity, so the leases are taken back.
    reopened = durable.Runtime(runtime.path, **{**runtime.settings, "identity": runtime.owner})
    await reopened.open()
    return reopened
