"""Workflows whose recorded histories are kept under tests/fixtures/histories/.

The files pin the journal format: a change that makes existing journals
unreadable or non-deterministic fails tests/test_testing.py. Regenerate them
only on purpose (a deliberate format change, with a migration):

    python -m tests.golden
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path

import orjson

import durable

FIXTURES = Path(__file__).parent / "fixtures" / "histories"


@dataclasses.dataclass
class Quote:
    supplier: str
    cents: int


async def fetch_quote(supplier: str) -> Quote:
    return Quote(supplier, 1000 + len(supplier))


def pick(quotes: list[Quote]) -> Quote:
    return min(quotes, key=lambda q: q.cents)


@durable.workflow(name="golden.procurement")
async def procurement(ctx: durable.WorkflowContext, suppliers: list[str]) -> dict[str, object]:
    quotes = await asyncio.gather(*(ctx.step(f"quote:{s}", fetch_quote, s) for s in suppliers))
    best = await ctx.step("pick", pick, list(quotes))
    await ctx.sleep(3600)
    approved = await ctx.wait_for_user(f"Buy from {best.supplier}?", input_type="approval")
    order_id = ctx.uuid4()
    delivered = await ctx.wait_for_event("delivered")
    return {"order": str(order_id), "approved": approved, "delivered": delivered}


HISTORIES = {"procurement_completed": procurement, "procurement_waiting": procurement}


async def record() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        clock = durable.VirtualClock()
        async with durable.Runtime(Path(folder) / "golden.db", clock=clock) as rt:
            done = await rt.start(procurement, ["acme", "globex"], run_id="golden-1")
            waiting = await rt.start(procurement, ["initech"], run_id="golden-2")
            for run_id in ("golden-1", "golden-2"):
                await rt.wait_for_question(run_id)  # the virtual clock skips the sleep
                await rt.respond(run_id, "yes")
            await rt.send_event("golden-1", "delivered", {"dock": 4})
            await done.result()
            while (await waiting.status()) != durable.RunStatus.WAITING or not [
                e for e in await rt.history("golden-2") if e["name"] == "delivered"
            ]:
                await asyncio.sleep(0.01)
            for name, run_id in (
                ("procurement_completed", "golden-1"),
                ("procurement_waiting", "golden-2"),
            ):
                document = await rt.export(run_id)
                (FIXTURES / f"{name}.json").write_bytes(
                    orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
                )


if __name__ == "__main__":
    asyncio.run(record())


@durable.workflow(name="golden.schema_v1")
async def schema_v1(ctx: durable.WorkflowContext, name: str) -> str:
    greeting = await ctx.step("greet", str.upper, f"hello {name}")
    await ctx.sleep(60)
    extra = await ctx.wait_for_event("finish")
    return f"{greeting} {extra}"


async def record_schema_fixture(path: Path) -> None:
    """A journal file with one run waiting for an event, written by this code's schema."""
    clock = durable.VirtualClock()
    async with durable.Runtime(path, clock=clock) as rt:
        await rt.start(schema_v1, "ada", run_id="v1-run")
        while (await rt.get_run("v1-run")).status != durable.RunStatus.SLEEPING:
            await asyncio.sleep(0.01)
        clock.advance(60)  # time skips by itself only while a run is awaited
        while (await rt.get_run("v1-run")).status != durable.RunStatus.WAITING:
            await asyncio.sleep(0.01)
