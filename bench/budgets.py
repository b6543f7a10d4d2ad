"""What a budget costs a step: sequential steps that each charge, with no budget, under
a budget of their own, and in a child under its parent's budget.

    python bench/budgets.py                                   # SQLite
    python bench/budgets.py --db postgresql://root@127.0.0.1/test

Each step charges (``durable.charge``); under a budget each step's start is also
checked against the run tree's committed spend (a cap never reached here). Printed
per durability: microseconds per step and floor commits per step (one plain commit
of one row on the same database, measured in the same run, as in ``run.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import run as bench_run  # noqa: E402
import workflows  # noqa: E402

import durable  # noqa: E402


async def per_step(durability: str, case: str, steps: int) -> float:
    """Microseconds per step of one run of ``steps`` charging steps."""
    with tempfile.TemporaryDirectory() as folder:
        async with bench_run.runtime(folder, durability) as rt:
            wf: Any = workflows.spender
            budget = durable.Budget(usd=1e9) if case == "own budget" else None
            if case == "parent's budget":
                wf = workflows.spending_parent
            start = time.perf_counter()
            handle = await rt.start_run(wf, [steps], {}, budget=budget)
            await handle.result(timeout=600)
            return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="a postgresql:// URL (default: SQLite files)")
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    if args.db:
        bench_run.POSTGRES = args.db
        bench_run.floor_us = bench_run.postgres_floor_us
    print(f"{'durability':<11}{'case':<18}{'us/step':>10}{'floors':>9}")
    for durability in ("full", "normal"):
        floor = bench_run.floor_us(durability)
        for case in ("no budget", "own budget", "parent's budget"):
            us = asyncio.run(per_step(durability, case, args.steps))
            print(f"{durability:<11}{case:<18}{us:>10.0f}{us / floor:>9.2f}")
    if args.db:
        bench_run.drop_bench_schemas()


if __name__ == "__main__":
    main()
