import asyncio
from dataclasses import dataclass

import durable


@dataclass
class Receipt:
    charge_id: str
    cents: int


async def charge_card(order_id: str, cents: int, idempotency_key: str) -> str:
    """Stands in for a payment API that de-duplicates on the idempotency key."""
    return f"ch_{idempotency_key[:12]}"


@durable.step(retry=durable.RetryPolicy(max_attempts=5), timeout=10.0)
async def charge(order_id: str, cents: int) -> Receipt:
    key = durable.step_info().idempotency_key  # same on every retry and replay
    return Receipt(await charge_card(order_id, cents, key), cents)


@durable.workflow
async def checkout(ctx: durable.WorkflowContext, order_id: str) -> dict[str, object]:
    receipt = await charge(order_id, 1999)  # journaled; never charged twice
    await ctx.sleep(1)  # durable: after a restart only the time left is waited
    ok = await ctx.wait_for_user("Ship it?", input_type="approval")
    return {"charge": receipt.charge_id, "approved": ok == "yes"}


async def main() -> None:
    async with durable.Runtime("app.db") as rt:  # opening it resumes unfinished runs
        run = await rt.start(checkout, "o-1", run_id="order-o-1")  # run_id: idempotency key
        if await run.status() != durable.RunStatus.COMPLETED:  # a second start finds it done
            question = await rt.wait_for_question(run.run_id)  # once the sleep is over
            print(question.question, [option["id"] for option in question.options or []])
            await rt.respond(run.run_id, "yes")  # journaled before it returns
        print(await run.result())


if __name__ == "__main__":
    asyncio.run(main())
