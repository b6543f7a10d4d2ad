"""Workflows the web view's tests serve (``durable serve tests.web_app``): runs in every
state a person debugs, a queue, a schedule; and ``seed``, which writes many ended runs
straight through the store, for paging and search."""

from __future__ import annotations

import asyncio
from pathlib import Path

import durable
from durable.journal.records import RunRecord
from durable.store import open_store

WEB_QUEUE = durable.Queue("web.one_at_a_time", concurrency=1)


class CardDeclined(Exception):
    pass


@durable.step(retry=durable.RetryPolicy(max_attempts=3, initial_interval=0.05))
async def charge(order_id: str, cents: int) -> dict[str, object]:
    if durable.step_info().attempt == 1:
        raise CardDeclined(f"card declined for {order_id} (try again)")
    return {"receipt": f"r-{order_id}", "cents": cents}


@durable.step
async def reserve(order_id: str) -> str:
    return f"slot-{order_id}"


@durable.workflow(name="web.notify")
async def notify(ctx: durable.WorkflowContext, order_id: str) -> str:
    return await ctx.step("send_mail", reserve, order_id)


@durable.workflow(name="web.checkout")
async def checkout(
    ctx: durable.WorkflowContext, order_id: str, cents: int = 1999
) -> dict[str, object]:
    """A step, a step that fails once and is retried, a child, a sleep, then an event."""
    slot = await reserve(order_id)
    receipt = await charge(order_id, cents)
    mailed = await notify(order_id)
    await ctx.sleep(0.2)
    shipped = await ctx.wait_for_event("shipped")
    return {"slot": slot, "receipt": receipt, "mailed": mailed, "shipped": shipped}


@durable.step(retry=durable.RetryPolicy(max_attempts=2, initial_interval=0.05))
async def refund(order_id: str, reason: str) -> None:
    raise ValueError(f"refund of {order_id} refused: {reason}")


@durable.workflow(name="web.broken")
async def broken(ctx: durable.WorkflowContext, order_id: str) -> None:
    """Fails for good in its step: Resume runs that step again."""
    await reserve(order_id)
    await refund(order_id, reason="<b>no</b>")


@durable.workflow(name="web.nap")
async def nap(ctx: durable.WorkflowContext, seconds: float) -> str:
    await ctx.sleep(seconds)
    return "rested"


@durable.workflow(name="web.in_line", queue=WEB_QUEUE)
async def in_line(ctx: durable.WorkflowContext, i: int) -> int:
    await ctx.wait_for_event("go")
    return i


@durable.workflow(name="web.nightly", cron="0 3 * * *", tz="UTC")
async def nightly(ctx: durable.WorkflowContext) -> None:
    return None


SEED_STATUSES = ("completed", "failed", "cancelled")
SEED_WORKFLOWS = ("bulk.import", "bulk.export")


async def seed(db: Path | str, count: int, *, now: float, spacing: float = 60.0) -> None:
    """``count`` ended runs ``bulk-00000``... (the newest last, ``spacing`` seconds
    apart, ending before ``now``), written through the store in a few transactions."""
    store = open_store(db, "normal", None, 0.05)
    await store.open()
    try:
        records = [_seeded(i, now - (count - i) * spacing) for i in range(count)]
        for start in range(0, count, 500):
            await asyncio.gather(*(store.create_run(r) for r in records[start : start + 500]))
    finally:
        await store.close()


def _seeded(i: int, created: float) -> RunRecord:
    status = SEED_STATUSES[i % 3]
    error = '{"code":"STEP_FAILED","type":"StepFailed","message":"seeded"}'
    return RunRecord(
        run_id=f"bulk-{i:05}",
        workflow=SEED_WORKFLOWS[i % 2],
        version="1",
        status=status,
        input=f'{{"args":[{i}],"kwargs":{{}}}}',
        input_digest=f"d{i}",
        output="null" if status == "completed" else None,
        error=error if status == "failed" else None,
        owner=None,
        lease_until=None,
        created_at=created,
        updated_at=created + 1.0,
    )


@durable.workflow(name="web.late", timeout=0.3)
async def late(ctx: durable.WorkflowContext) -> str:
    """Fails at its deadline: nothing can resume it."""
    await reserve("late")
    await ctx.sleep(60)
    return "never"
