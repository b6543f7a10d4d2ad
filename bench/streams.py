"""A step streams values; a reader in another process reads them as they are committed.

    python bench/streams.py                                  # SQLite, full and normal
    python bench/streams.py --db postgresql://root@127.0.0.1/test
    python bench/streams.py --count 1000 --pace 0.001        # paced as a model's tokens

A child process opens a runtime (the writer) and runs ``bench.step_streamer``: one
step writing ``--count`` values with ``durable.write_stream``, ``--pace`` seconds
apart (0: as fast as it can). This process reads them with ``rt.read_stream`` on a
runtime of its own (``recover=False``). Printed per durability: values per second
(from the first value read to the last), the journal commits the writer made for
the run per 1,000 values (its writer's batch counter, the run's other writes
included), and the p50 / p99 latency from a value's write (the step's wall clock,
just before the write) to its read here (same machine, same clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import workflows  # noqa: E402

import durable  # noqa: E402


async def write(db: str, durability: str, run_id: str) -> None:
    """The writer's side: claim the run (started by the reader), run it, and say how
    many commits its writer made meanwhile."""
    async with durable.Runtime(db, durability=durability) as rt:
        await rt.handle(run_id).result(timeout=600)
        # Every commit since it opened: its claim of the run and its lease count too.
        print(json.dumps({"commits": rt.store.writer.batches}))  # type: ignore[attr-defined]


async def read(db: str, durability: str, count: int, pace: float) -> dict[str, float]:
    """The reader's side: start the run, let a writer process run it, read its stream."""
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    async with durable.Runtime(db, recover=False) as rt:
        await rt.start(workflows.step_streamer, count, pace, run_id=run_id)
        writer = subprocess.Popen(
            [sys.executable, __file__, "--db", db, "--write", run_id, "--durability", durability],
            stdout=subprocess.PIPE,
            text=True,
        )
        latencies, first, last = [], 0.0, 0.0
        async for item in rt.read_stream(run_id, "values"):
            now = time.time()
            latencies.append((now - item.value["written"]) * 1000)
            first, last = first or now, now
        out, _ = await asyncio.to_thread(writer.communicate, timeout=600)
    assert len(latencies) == count, len(latencies)
    latencies.sort()
    return {
        "rate": count / (last - first) if last > first else float("inf"),
        "commits": json.loads(out)["commits"] * 1000 / count,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="a postgresql:// URL (default: a SQLite file)")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--pace", type=float, default=0.0, help="seconds between values")
    parser.add_argument("--durability", choices=["full", "normal"], help="(default: both)")
    parser.add_argument("--write", metavar="RUN_ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        asyncio.run(write(args.db, args.durability, args.write))
        return
    where = "PostgreSQL" if args.db else "SQLite"
    with tempfile.TemporaryDirectory() as folder:
        for durability in [args.durability] if args.durability else ["full", "normal"]:
            db = str(Path(folder) / f"{durability}.db")
            if args.db:
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                db = f"{args.db}{'&' if '?' in args.db else '?'}schema={schema}"
            try:
                found = asyncio.run(read(db, durability, args.count, args.pace))
            finally:
                if args.db:
                    _drop(args.db, schema)
            print(
                f"{where} {durability}: {args.count} values, pace {args.pace:g} s:"
                f" {found['rate']:,.0f} values/s, {found['commits']:.1f} commits per 1,000"
                f" values, write-to-read p50 {found['p50']:.2f} ms, p99 {found['p99']:.2f} ms"
            )


def _drop(url: str, schema: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


if __name__ == "__main__":
    main()
