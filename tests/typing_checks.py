"""Checked by `mypy --strict` in CI, never run: wrong calls must stay type errors.

Each `# type: ignore[...]` marks a call that must fail type checking; with
`warn_unused_ignores` (part of --strict) mypy reports the ignore as unused if
the call ever starts to type-check, so a regression in our signatures fails CI.
"""

from __future__ import annotations

import durable


@durable.step
async def charge(order_id: str, cents: int) -> float:
    return cents / 100


def parse(text: str) -> int:
    return int(text)


@durable.workflow
async def checkout(ctx: durable.WorkflowContext, order_id: str) -> dict[str, float]:
    amount: float = await ctx.step(charge, order_id, 1999)
    again: float = await charge(order_id, 1999)
    number: int = await ctx.step("parse", parse, "12")
    await ctx.step(charge, order_id, "1999")  # type: ignore[call-overload]
    await ctx.step("parse", parse, 12)  # type: ignore[call-overload]
    wrong: str = await ctx.step(parse, "1")  # type: ignore[call-overload]
    return {"amount": amount + again + number, "wrong": float(len(wrong))}


async def main() -> None:
    async with durable.Runtime("app.db") as rt:
        handle: durable.RunHandle[dict[str, float]] = await rt.start(checkout, "o-1")
        result: dict[str, float] = await handle.result()
        direct: dict[str, float] = await checkout("o-2")
        await checkout(1)  # type: ignore[arg-type]
        bad: str = await handle.result()  # type: ignore[assignment]
        print(result, direct, bad)
