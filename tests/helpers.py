"""Small async helpers: wait on journal state with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import durable

T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached in {timeout}s (last value {value!r})")
        await asyncio.sleep(0.005)


async def timers_caught_up(rt: durable.Runtime) -> None:
    """Return once the runtime's timers have fired all that is due now: a probe timer
    due now has fired, and timers fire in deadline order."""
    fired = asyncio.Event()
    rt.timers.call_at(rt.clock.now(), fired.set)
    await asyncio.wait_for(fired.wait(), 5)


async def status_is(rt: durable.Runtime, run_id: str, status: str) -> durable.RunInfo:
    """The run once it has ``status`` (it may not exist yet: a child about to start)."""

    async def check() -> durable.RunInfo | None:
        try:
            info = await rt.get_run(run_id)
        except durable.RunNotFound:
            return None
        return info if info.status == status else None

    return await until(check)


async def kinds(rt: durable.Runtime, run_id: str) -> list[tuple[int | None, str, str]]:
    return [(e["position"], e["kind"], e["name"]) for e in await rt.history(run_id)]
