"""Workflows the web view's tests serve (``durable serve tests.web_app``): runs in every
state a person debugs, a queue, a schedule. Imported only by the server it runs in:
its workflows (a schedule among them) would join every runtime of a test process
(``seeded_runs.py`` writes the many ended runs for paging and search)."""

from __future__ import annotations

import durable

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


@durable.workflow(name="web.late", timeout=0.3)
async def late(ctx: durable.WorkflowContext) -> str:
    """Fails at its deadline: nothing can resume it."""
    await reserve("late")
    await ctx.sleep(60)
    return "never"
