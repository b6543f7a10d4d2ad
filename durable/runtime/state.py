"""Reading a run's state from outside it: ``rt.get_state`` and ``rt.wait_state``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from durable._base.aio import within
from durable._base.ids import check_name
from durable._base.numbers import seconds
from durable.errors import DurableError
from durable.journal.records import TERMINAL
from durable.journal.run_journal import state_of

if TYPE_CHECKING:
    from durable.runtime.runtime import Runtime


async def read_state(rt: Runtime, run_id: str) -> dict[str, Any]:
    """``rt.get_state``: the run's state as its committed journal leaves it."""
    await rt._record(run_id)
    return state_of((await rt.store.load_events([run_id]))[run_id])


async def wait_state(rt: Runtime, run_id: str, key: str, timeout: float | None) -> Any:
    """``rt.wait_state``: the value of ``key`` once the run has set it."""
    check_name("a ctx.state key", key)
    if timeout is None:
        return await _state_set(rt, run_id, key)
    try:
        return await within(_state_set(rt, run_id, key), seconds("timeout", timeout))
    except TimeoutError:
        status = (await rt._record(run_id)).status
        raise TimeoutError(
            f"run {run_id!r} did not set {key!r} in its state within {timeout} s; it is {status}"
        ) from None


async def _state_set(rt: Runtime, run_id: str, key: str) -> Any:
    while True:
        changed = rt.inbox.next_change()
        record = await rt._record(run_id)  # before the state: an end seen implies its state
        state = await read_state(rt, run_id)
        if key in state:
            changed.cancel()
            return state[key]
        if record.status in TERMINAL:
            changed.cancel()
            raise DurableError(f"run {run_id!r} ended {record.status} without setting {key!r}")
        with rt.awaiting(changed.done):  # a virtual clock skips meanwhile
            await changed
