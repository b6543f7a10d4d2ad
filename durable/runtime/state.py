"""Reading a run's state from outside it: ``rt.get_state`` and ``rt.wait_state``."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from durable._base.ids import check_name
from durable._base.numbers import seconds
from durable.errors import DurableError
from durable.journal.run_journal import state_of
from durable.runtime.reading import Reading
from durable.runtime.watch import in_time


async def read_state(reading: Reading, run_id: str) -> dict[str, Any]:
    """``rt.get_state``: the run's state as its committed journal leaves it."""
    await reading.record(run_id)
    return state_of(await reading.events(run_id))


async def wait_state(reading: Reading, run_id: str, key: str, timeout: float | None) -> Any:
    """``rt.wait_state``: the value of ``key`` once the run has set it."""
    check_name("a ctx.state key", key)
    if timeout is not None:
        seconds("timeout", timeout)

    async def late() -> str:
        status = (await reading.record(run_id)).status
        return f"run {run_id!r} did not set {key!r} in its state within {timeout} s; it is {status}"

    return await in_time(_state_set(reading, run_id, key), timeout, late)


async def _state_set(reading: Reading, run_id: str, key: str) -> Any:
    async with aclosing(reading.watch(run_id, "all")) as looks:
        async for news in looks:
            state = state_of(news.events)
            if key in state:
                return state[key]
    raise DurableError(f"run {run_id!r} ended {news.record.status} without setting {key!r}")
