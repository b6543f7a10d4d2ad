"""The point of durable in one command: kill a workflow mid-run, restart, and finish.

    python examples/crash_recovery.py

A checkout workflow runs in a child process. While it is inside its third
step, the child is killed with SIGKILL (no cleanup, no goodbye). A new
process opens the same journal file, resumes the run, and finishes it:
the steps that had completed return their journaled results without running
again, and the interrupted step learns that an earlier attempt started and
never finished, with the same idempotency key to pass to the courier's API.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import durable


@dataclass
class Receipt:
    charge_id: str
    cents: int


def say(text: str) -> None:
    print(text, flush=True)


@durable.step
async def reserve_inventory(order_id: str) -> list[str]:
    info = durable.step_info()
    say(f"  RAN   reserve_inventory  attempt {info.attempt}")
    return ["mug", "tea"]


@durable.step
async def charge_card(order_id: str, cents: int) -> Receipt:
    info = durable.step_info()
    say(f"  RAN   charge_card        attempt {info.attempt}, key {info.idempotency_key}")
    return Receipt(charge_id=f"ch_{order_id}", cents=cents)


@durable.step
async def book_courier(order_id: str) -> str:
    info = durable.step_info()
    say(
        f"  START book_courier       attempt {info.attempt}, earlier attempt:"
        f" {info.retry.prior_completion_status}, key {info.idempotency_key}"
    )
    if os.environ.get("DEMO_SLOW_COURIER"):
        await asyncio.Event().wait()  # the courier API hangs; the demo kills us here
    say("  RAN   book_courier       done")
    return f"trk_{order_id}"


@durable.workflow(name="checkout")
async def checkout(ctx: durable.WorkflowContext, order_id: str) -> dict[str, object]:
    items = await reserve_inventory(order_id)
    receipt = await charge_card(order_id, 1999)
    tracking = await book_courier(order_id)
    return {"items": items, "charge": receipt.charge_id, "tracking": tracking}


async def child(db: str) -> None:
    say(f"process {os.getpid()}: opening {Path(db).name}, resuming anything unfinished")
    async with durable.Runtime(db) as rt:
        run = await rt.start(checkout, "o-42", run_id="order-o-42")
        result = await run.result()
        say(f"  RESULT {result}")


def spawn(db: str, slow: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DEMO_SLOW_COURIER", None)
    if slow:
        env["DEMO_SLOW_COURIER"] = "1"
    return subprocess.Popen(
        [sys.executable, __file__, "--child", db], stdout=subprocess.PIPE, text=True, env=env
    )


async def show_journal(db: str) -> None:
    async with durable.Runtime(db, recover=False) as rt:
        say("\nThe journal (rt.history), in order:")
        for event in await rt.history("order-o-42"):
            say(f"  position {event['position']}  {event['kind']:<15} {event['name']}")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "shop.db")
        say("== Run 1: start the checkout; the courier API will hang")
        first = spawn(db, slow=True)
        assert first.stdout is not None
        for line in first.stdout:
            print(line, end="")
            if "START book_courier" in line:
                break
        first.send_signal(signal.SIGKILL)
        first.wait()
        say(f"== SIGKILL: process {first.pid} killed in the middle of book_courier\n")

        say("== Run 2: a new process opens the same file")
        second = spawn(db, slow=False)
        output, _ = second.communicate(timeout=60)
        print(output, end="")
        if second.returncode != 0:
            sys.exit(f"the second process failed with exit code {second.returncode}")
        asyncio.run(show_journal(db))
        ran_twice = [
            name for name in ("reserve_inventory", "charge_card") if f"RAN   {name}" in output
        ]
        say(
            "\nreserve_inventory and charge_card ran once, in process 1; the card was"
            " not charged again."
            if not ran_twice
            else f"\nUNEXPECTED: {ran_twice} ran again"
        )
        say(
            "book_courier was started twice: its second attempt knew the first never"
            " finished and got the same idempotency key."
        )
        if ran_twice:
            sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        asyncio.run(child(sys.argv[2]))
    else:
        main()
