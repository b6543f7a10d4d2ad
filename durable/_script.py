"""``durable.run``: one workflow to its end from a script, in a runtime of its own."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from typing_extensions import ParamSpec

from ._runtime import Runtime
from ._workflow import Workflow
from .errors import DurableError

P = ParamSpec("P")
R = TypeVar("R")


def run(wf: Workflow[P, R], *args: Any, db: str = "durable.db", **kwargs: Any) -> R:
    """Run one workflow to its end from a script: the ``asyncio.run`` of durable."""

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise DurableError(
            "durable.run() was called inside a running event loop; it is for scripts. In async"
            " code use `async with durable.Runtime(db) as rt:` and `await rt.start(...)`"
        )

    async def main() -> R:
        async with Runtime(db) as runtime:
            handle = await runtime.start(wf, *args, **kwargs)
            return await handle.result()

    return asyncio.run(main())
