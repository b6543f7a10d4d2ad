"""Workflows with budgets that the CLI, server and web view tests run in real workers
(``durable worker tests.budget_app``, ``durable serve ... --module tests.budget_app``)."""

from __future__ import annotations

import durable


@durable.step
async def paid(i: int) -> int:
    """Half a dollar and 100 tokens a call."""
    durable.charge(usd=0.5, tokens=100)
    return i


@durable.workflow(name="budget.spender", budget=durable.Budget(usd=1.0))
async def spender(ctx: durable.WorkflowContext, steps: int = 4) -> list[int]:
    """Two paid steps reach its cap; a third asks first. Told to stop, it wraps up."""
    done = []
    for i in range(steps):
        try:
            done.append(await paid(i))
        except durable.BudgetExceeded:
            done.append(-1)
            break
    return done


@durable.workflow(name="budget.kid")
async def kid(ctx: durable.WorkflowContext, steps: int) -> int:
    """No budget of its own: it spends from its parent's."""
    for i in range(steps):
        await paid(i)
    return steps


@durable.workflow(name="budget.tree", budget=durable.Budget(tokens=150))
async def tree(ctx: durable.WorkflowContext) -> int:
    """Its child's spend counts against its budget: the child is held at its third step."""
    return await kid(3)


@durable.workflow(name="budget.free")
async def free(ctx: durable.WorkflowContext) -> int:
    """Spends with no budget over it: nothing to raise."""
    return await paid(7)
