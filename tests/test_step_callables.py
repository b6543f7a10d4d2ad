"""Steps of every callable kind: objects with an async ``__call__``, bound methods,
partials, sync callable objects, and ``@durable.step`` applied to each."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import durable

from .helpers import kinds, status_is

CALLS: list[str] = []


@dataclasses.dataclass
class Receipt:
    id: str
    cents: int


class Invoker:
    """Like an agent SDK's tool invoker: an object whose ``__call__`` is async."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    async def __call__(self, cents: int) -> Receipt:
        CALLS.append(f"invoke {cents} in step {durable.in_step()}")
        return Receipt(f"{self.prefix}-{cents}", cents)

    async def refund(self, cents: int) -> Receipt:
        CALLS.append(f"refund {cents}")
        return Receipt(f"refund-{cents}", -cents)


class Tokens:
    async def __call__(self, count: int) -> AsyncIterator[str]:
        for index in range(count):
            yield f"t{index}"


class SyncCounter:
    def __call__(self, text: str) -> int:
        CALLS.append(
            f"count in main thread {threading.current_thread() is threading.main_thread()}"
        )
        return len(text)


async def pay(prefix: str, cents: int) -> Receipt:
    CALLS.append(f"pay {prefix} {cents}")
    return Receipt(f"{prefix}-{cents}", cents)


invoker = Invoker("r")
tool = durable.step(name="tool", retry=durable.RetryPolicy(max_attempts=2))(Invoker("tool"))
unnamed_tool = durable.step(Invoker("plain"))


@durable.workflow(name="callables.all")
async def every_kind(ctx: durable.WorkflowContext) -> dict[str, object]:
    results: dict[str, object] = {
        "object": await ctx.step(invoker, 1),
        "named object": await ctx.step("charge", invoker, 2),
        "bound method": await ctx.step(invoker.refund, 3),
        "partial": await ctx.step(functools.partial(pay, "p"), 4),
        "decorated object": await tool(5),
        "decorated unnamed": await unnamed_tool(6),
        "stream": await ctx.step(Tokens(), 2),
        "sync object": await ctx.step(SyncCounter(), "four"),
    }
    await ctx.wait_for_event("go")
    results["types"] = sorted({type(v).__name__ for v in results.values()})
    return results


async def test_every_kind_of_callable_is_a_named_journaled_step(db: Path) -> None:
    CALLS.clear()
    async with durable.Runtime(db) as rt:
        await rt.start(every_kind, run_id="c")
        await status_is(rt, "c", "waiting")
        assert [(p, name) for p, kind, name in await kinds(rt, "c") if kind == "step.started"] == [
            (0, "Invoker"),
            (1, "charge"),
            (2, "Invoker.refund"),
            (3, "pay"),
            (4, "tool"),
            (5, "Invoker"),
            (6, "Tokens"),
            (7, "SyncCounter"),
        ]
    expected = [
        "invoke 1 in step True",
        "invoke 2 in step True",
        "refund 3",
        "pay p 4",
        "invoke 5 in step True",
        "invoke 6 in step True",
        "count in main thread False",
    ]
    assert expected == CALLS
    async with durable.Runtime(db) as rt:  # replayed in another runtime: nothing runs again
        await rt.send_event("c", "go")
        result = await rt.handle("c").result(timeout=10)
        stream = [item async for item in rt.read_stream("c", "Tokens")]
    assert expected == CALLS
    assert result == {
        "object": {"id": "r-1", "cents": 1},
        "named object": {"id": "r-2", "cents": 2},
        "bound method": {"id": "refund-3", "cents": -3},
        "partial": {"id": "p-4", "cents": 4},
        "decorated object": {"id": "tool-5", "cents": 5},
        "decorated unnamed": {"id": "plain-6", "cents": 6},
        "stream": ["t0", "t1"],
        "sync object": 4,
        "types": ["Receipt", "int", "list"],  # decoded by each __call__'s annotation
    }
    assert [getattr(item, "value", item) for item in stream] == ["t0", "t1"]


async def test_a_decorated_object_is_a_plain_call_outside_a_workflow() -> None:
    CALLS.clear()
    assert await tool(7) == Receipt("tool-7", 7)
    assert CALLS == ["invoke 7 in step False"]
    assert asyncio.iscoroutinefunction(tool)
    assert str(inspect.signature(tool)) == "(cents: 'int') -> 'Receipt'"
    names = (getattr(tool, "__name__", None), getattr(tool, "__qualname__", None))
    assert names == ("Invoker", "Invoker")


async def test_a_sync_object_called_directly_in_a_workflow_is_refused_by_name(db: Path) -> None:
    counter = durable.step(SyncCounter())

    @durable.workflow(name="callables.sync_direct")
    async def direct(ctx: durable.WorkflowContext) -> int:
        return counter("text")

    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await (await rt.start(direct)).result(timeout=10)
    message = str(failed.value)
    assert "sync step SyncCounter was called directly in a workflow" in message
    assert "`await ctx.step(SyncCounter, ...)`" in message
