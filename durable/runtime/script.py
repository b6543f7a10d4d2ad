"""``durable.run``: one workflow to its end from a script, in a runtime of its own."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from typing_extensions import ParamSpec

from durable._base.codec import canonical, digest
from durable.errors import DurableError, SerializationError
from durable.runtime.runtime import Runtime
from durable.workflow.decorators import Workflow

P = ParamSpec("P")
R = TypeVar("R")


def run(
    wf: Workflow[P, R],
    *args: Any,
    db: str = "durable.db",
    run_id: str | None = None,
    **kwargs: Any,
) -> R:
    """Run one workflow to its end from a script: the ``asyncio.run`` of durable.

    Without ``run_id`` the run's id is derived from the workflow's name and its
    input (``script_run_id``), so running the same script again after a crash
    resumes that run, or returns its result, and never starts a second one.
    """

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise DurableError(
            "durable.run() was called inside a running event loop; it is for scripts. In async"
            " code use `async with durable.Runtime(db) as rt:` and `await rt.start(...)`"
        )
    rid = script_run_id(wf, args, kwargs) if run_id is None else run_id

    async def main() -> R:
        async with Runtime(db) as runtime:
            handle = await runtime.start(wf, *args, run_id=rid, **kwargs)
            return await handle.result()

    return asyncio.run(main())


def script_run_id(wf: Workflow[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``<workflow name>-<24 hex digits of the digest of its name and input>``."""
    try:
        text = canonical({"workflow": wf.name, "args": args, "kwargs": kwargs})
    except SerializationError as exc:
        raise SerializationError(
            f"the arguments of workflow {wf.name!r} cannot be stored: {exc.message}"
        ) from None
    return f"{wf.name}-{digest(text)[:24]}"
