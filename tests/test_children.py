"""Child workflows: started and ended in the parent's journal, cancelled with it, run anywhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import durable

from .helpers import kinds, status_is

CALLS: list[str] = []


@durable.workflow(name="children.double")
async def double(ctx: durable.WorkflowContext, n: int) -> int:
    CALLS.append(f"double {n}")
    return await ctx.step("times_two", _times_two, n)


async def _times_two(n: int) -> int:
    return n * 2


@durable.workflow(name="children.parent")
async def parent(ctx: durable.WorkflowContext, n: int) -> list[int]:
    first = await double(n)
    handle = await ctx.start_child(double, n + 1)
    await ctx.wait_for_event("go")
    return [first, await handle.result()]


@durable.workflow(name="children.fails")
async def fails(ctx: durable.WorkflowContext) -> None:
    raise ValueError("the child broke")


@durable.workflow(name="children.catches")
async def catches(ctx: durable.WorkflowContext) -> str:
    try:
        await fails()
    except durable.WorkflowFailed as failed:
        seen = f"{failed.run_id} {failed.error['type']} {failed.error['message']}"
    await ctx.wait_for_event("go")
    return seen


@durable.workflow(name="children.waits")
async def waits(ctx: durable.WorkflowContext) -> str:
    return str(await ctx.wait_for_event("never"))


@durable.workflow(name="children.family")
async def family(ctx: durable.WorkflowContext) -> list[str]:
    kids = [await ctx.start_child(waits) for _ in range(2)]
    grandchild = await ctx.start_child(nested)
    return [str(await kid.result()) for kid in kids] + [str(await grandchild.result())]


@durable.workflow(name="children.nested")
async def nested(ctx: durable.WorkflowContext) -> str:
    return await waits()


@durable.workflow(name="children.fan_out")
async def fan_out(ctx: durable.WorkflowContext, n: int) -> list[int]:
    return await ctx.parallel(*(double(i) for i in range(n)))


async def test_a_child_runs_as_its_own_run_and_returns_its_result(db: Path) -> None:
    CALLS.clear()
    async with durable.Runtime(db) as rt:
        await rt.start(parent, 5, run_id="p")
        await status_is(rt, "p", "waiting")
        await rt.send_event("p", "go")
        assert await rt.handle("p").result(timeout=10) == [10, 12]
        children = await rt.list_runs(parent="p")
        assert sorted(child.run_id for child in children) == ["p.0", "p.1"]
        assert {child.parent_run_id for child in children} == {"p"}
        assert [child.output for child in sorted(children, key=lambda c: c.run_id)] == [10, 12]
        assert (await rt.get_run("p")).parent_run_id is None
        journal = await kinds(rt, "p")
        assert (0, "child.started", "children.double") in journal
        assert (0, "child.completed", "children.double") in journal
        assert (1, "child.started", "children.double") in journal
    assert CALLS == ["double 5", "double 6"]


async def test_a_replayed_parent_gets_the_same_children_and_results(db: Path) -> None:
    CALLS.clear()
    async with durable.Runtime(db) as rt:
        await rt.start(parent, 1, run_id="p")
        await status_is(rt, "p", "waiting")
        await status_is(rt, "p.1", "completed")  # not stopped mid-way by the close
    async with durable.Runtime(db, always_replay=True) as rt:
        await rt.send_event("p", "go")
        assert await rt.handle("p").result(timeout=10) == [2, 4]
        assert len(await rt.list_runs(parent="p")) == 2
    assert CALLS == ["double 1", "double 2"]  # no child started or run again


async def test_a_failed_child_raises_workflow_failed_identically_on_replay(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(catches, run_id="c")
        await status_is(rt, "c", "waiting")
    async with durable.Runtime(db) as rt:
        await rt.send_event("c", "go")
        assert await rt.handle("c").result(timeout=10) == "c.0 ValueError the child broke"
        assert (await rt.get_run("c.0")).status is durable.RunStatus.FAILED


async def test_cancelling_a_parent_cancels_its_unfinished_children(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(family, run_id="f")
        await status_is(rt, "f.2.0", "waiting")  # the grandchild
        await rt.cancel("f")
        for run_id in ("f", "f.0", "f.1", "f.2", "f.2.0"):
            assert (await status_is(rt, run_id, "cancelled")).status is durable.RunStatus.CANCELLED
        with pytest.raises(durable.WorkflowCancelled):
            await rt.handle("f").result(timeout=5)


async def test_a_cancelled_child_raises_workflow_cancelled_in_its_parent(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(nested, run_id="n")
        await status_is(rt, "n.0", "waiting")
        await rt.cancel("n.0")
        with pytest.raises(durable.WorkflowFailed) as failed:
            await rt.handle("n").result(timeout=5)
        assert failed.value.error["code"] == "WORKFLOW_CANCELLED"


async def test_children_in_parallel_take_positions_in_argument_order(db: Path) -> None:
    async with durable.Runtime(db) as rt:
        assert await (await rt.start(fan_out, 4, run_id="fan")).result(timeout=10) == [0, 2, 4, 6]
        started = [e for e in await rt.history("fan") if e["kind"] == "child.started"]
        assert [(e["position"], e["payload"]["run_id"]) for e in started] == [
            (i, f"fan.{i}") for i in range(4)
        ]


async def test_a_child_that_ends_while_its_parent_reads_its_row_still_wakes_it(
    db: Path,
) -> None:
    """The parent reads the child's row, the child ends here before the parent parks:
    the end's nudge finds no wait yet, and the parent must not wait for good (nothing
    else tells this runtime of what it wrote itself)."""
    async with durable.Runtime(db) as rt:
        handle = await rt.start(parent, 1, run_id="slow")
        await status_is(rt, "slow.1", "completed")  # ended while the parent waits for "go"
        get_run = rt.store.get_run
        stale_reads: list[Any] = []

        async def stale(run_id: str) -> Any:
            record = await get_run(run_id)
            if run_id == "slow.1" and not stale_reads:  # as read just before it ended
                assert record is not None and record.status == "completed"
                stale_reads.append(record)
                return dataclasses.replace(record, status="running")
            return record

        rt.store.get_run = stale  # type: ignore[method-assign]
        await rt.send_event("slow", "go")
        assert await handle.result(timeout=10) == [2, 4]
        assert stale_reads


async def test_a_child_executed_by_another_runtime_wakes_its_parent(db: Path) -> None:
    async with (
        durable.Runtime(db, workflows=[parent]) as parents,
        durable.Runtime(db, workflows=[double]) as children,
    ):
        await parents.start(parent, 3, run_id="p")
        await status_is(parents, "p", "waiting")
        assert "p" not in children.loaded_runs
        await parents.send_event("p", "go")
        assert await parents.handle("p").result(timeout=10) == [6, 8]
        for child in ("p.0", "p.1"):  # executed, and so owned, by the other runtime
            record = await parents.store.get_run(child)
            assert record is not None and record.owner == children.owner


async def test_a_child_id_may_be_given(db: Path) -> None:
    @durable.workflow(name="children.named")
    async def named(ctx: durable.WorkflowContext) -> int:
        handle = await ctx.start_child(double, 2, run_id="my-child")
        assert handle.run_id == "my-child"
        return await handle.result()

    async with durable.Runtime(db) as rt:
        assert await (await rt.start(named, run_id="x")).result(timeout=10) == 4
        assert (await rt.get_run("my-child")).parent_run_id == "x"


async def test_a_child_with_arguments_that_cannot_be_stored_writes_nothing(db: Path) -> None:
    @durable.workflow(name="children.bad_args")
    async def bad_args(ctx: durable.WorkflowContext) -> str:
        try:
            await double(object())  # type: ignore[arg-type]
        except durable.SerializationError as error:
            return str(error)
        return "stored"

    async with durable.Runtime(db) as rt:
        message = await (await rt.start(bad_args, run_id="b")).result(timeout=10)
        assert "children.double" in message and "cannot be stored" in message
        assert await rt.list_runs(parent="b") == []
        assert [kind for _, kind, _ in await kinds(rt, "b")] == []


@durable.workflow(name="children.attach")
async def attach(ctx: durable.WorkflowContext, child_id: str, n: int | None) -> list[Any]:
    """Attaches to run ``child_id``: ``double(n)``, or ``waits()`` when ``n`` is None."""
    if n is None:
        child: durable.ChildHandle[Any] = await ctx.start_child(waits, run_id=child_id)
    else:
        child = await ctx.start_child(double, n, run_id=child_id)
    return [child.run_id, await child.result()]


async def test_a_child_id_that_names_an_existing_run_attaches_to_it(db: Path) -> None:
    CALLS.clear()
    async with durable.Runtime(db) as rt:
        await (await rt.start(double, 1, run_id="solo")).result(timeout=10)
        await (await rt.start(attach, "kid", 3, run_id="owner")).result(timeout=10)
        # One run attaches to a run rt.start made, another to the child of another run.
        assert await (await rt.start(attach, "solo", 1, run_id="a")).result(timeout=10) == [
            "solo",
            2,
        ]
        assert await (await rt.start(attach, "kid", 3, run_id="b")).result(timeout=10) == [
            "kid",
            6,
        ]
        for attaching in ("a", "b"):
            calls = [kind for _, kind, _ in await kinds(rt, attaching)]
            assert calls == ["child.started", "child.completed"]
        assert CALLS == ["double 1", "double 3"]  # nothing started twice
        # An attached run keeps its own parent (or none): it existed first.
        assert (await rt.get_run("solo")).parent_run_id is None
        assert (await rt.get_run("kid")).parent_run_id == "owner"
        assert await rt.list_runs(parent="a") == []


async def test_an_attached_run_that_ends_later_wakes_the_run_that_attached(db: Path) -> None:
    # The store tells only a run's own parent of its end; the attaching run, here run
    # by another runtime than the attached one, must hear of it all the same.
    async with durable.Runtime(db, workflows=[waits]) as runner:
        await runner.start(waits, run_id="w")
        await status_is(runner, "w", "waiting")
        async with durable.Runtime(db, workflows=[attach]) as rt:
            handle = await rt.start(attach, "w", None, run_id="p")
            await status_is(rt, "p", "waiting")
            await rt.send_event("w", "never", "at last")
            assert await handle.result(timeout=10) == ["w", "at last"]
    async with durable.Runtime(db, always_replay=True) as rt:  # the replay attaches the same
        assert await rt.handle("p").result(timeout=10) == ["w", "at last"]


async def test_attaching_to_a_run_of_another_workflow_or_input_is_a_mismatch(db: Path) -> None:
    @durable.workflow(name="children.mismatch")
    async def mismatch(ctx: durable.WorkflowContext, child_id: str) -> str:
        try:
            await ctx.start_child(double, 2, run_id=child_id)
        except durable.IdempotencyKeyMismatch as error:
            return f"{error.code} {error.run_id}"
        return "attached"

    async with durable.Runtime(db) as rt:
        await (await rt.start(double, 1, run_id="other-input")).result(timeout=10)
        await rt.start(waits, run_id="other-workflow")
        for child_id in ("other-input", "other-workflow"):
            handle = await rt.start(mismatch, child_id)
            assert await handle.result(timeout=10) == f"IDEMPOTENCY_KEY_MISMATCH {child_id}"
        await rt.cancel("other-workflow")

        @durable.workflow(name="children.itself")
        async def itself(ctx: durable.WorkflowContext) -> str:
            try:
                await ctx.start_child(itself, run_id=ctx.run_id)
            except ValueError as error:
                return str(error)
            return "attached to itself"

        assert "its own end" in await (await rt.start(itself)).result(timeout=10)


async def test_the_cli_lists_a_runs_children(db: Path) -> None:
    from .processes import cli

    async with durable.Runtime(db) as rt:
        await (await rt.start(fan_out, 2, run_id="fan")).result(timeout=10)

    listed = cli(db, "runs", "--parent", "fan")
    assert listed.returncode == 0, listed.stderr
    assert "fan.0" in listed.stdout and "fan.1" in listed.stdout
    shown = cli(db, "show", "fan")
    assert shown.returncode == 0, shown.stderr
    assert "children" in shown.stdout and "fan.0" in shown.stdout and "fan.1" in shown.stdout
    assert "parent    fan" in cli(db, "show", "fan.0").stdout
