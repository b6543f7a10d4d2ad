"""The refund agent's run in a real child process, for the crash tests to SIGKILL.

Usage: python -m tests.agent_child DB RUN_ID (with DURABLE_TEST_EFFECTS set). It starts
(or, after a kill, resumes) the run and logs "result <output>" when it ends; the parent
answers the approval through a runtime of its own.
"""

from __future__ import annotations

import asyncio
import sys

import durable

from .refund_agent import effect, support


async def main(db: str, run_id: str) -> None:
    async with durable.Runtime(db) as rt:
        run = await rt.start(support, "refund my order", run_id=run_id)
        effect(f"result {await run.result()}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
