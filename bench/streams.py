"""A workflow writes 10,000 stream values; a client reads them over SSE from another process.

    python bench/streams.py                                  # SQLite, durability normal
    python bench/streams.py --db postgresql://root@127.0.0.1/test
    python bench/streams.py --count 2000 --durability full

Prints values per second (from the first value read to the last) and the p50 / p99
latency from a value's write (its workflow's wall clock, just before the write) to
the moment the client read it (same machine, same clock). Needs the `server` extra.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="a postgresql:// URL (default: a SQLite file)")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--durability", default="normal", choices=["full", "normal"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "bench.db")
        if args.db:
            db = f"{args.db}{'&' if '?' in args.db else '?'}schema=bench_{uuid.uuid4().hex[:8]}"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{HERE.parent}"}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "durable",
                "--db",
                db,
                "serve",
                "workflows",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline().startswith(
                "durable serve"
            )
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=60) as client:
                run_id = client.post(
                    "/api/workflows/bench.streamer/runs", json={"args": [args.count]}
                ).json()["run_id"]
                latencies, first, last = [], None, 0.0
                with client.stream("GET", f"/api/runs/{run_id}/streams/values") as events:
                    for line in events.iter_lines():
                        if not line.startswith("data: {"):
                            continue
                        now = time.time()
                        value = orjson.loads(line[6:])
                        latencies.append((now - value["written"]) * 1000)
                        first = now if first is None else first
                        last = now
            latencies.sort()
            assert len(latencies) == args.count, len(latencies)
            rate = args.count / (last - (first or last)) if last != first else float("inf")
            where = "PostgreSQL" if args.db else "SQLite"
            print(
                f"{where}: {args.count} values over SSE: {rate:,.0f} values/s, write-to-read"
                f" p50 {latencies[len(latencies) // 2]:.2f} ms,"
                f" p99 {latencies[int(len(latencies) * 0.99)]:.2f} ms"
            )
        finally:
            server.terminate()
            server.communicate(timeout=30)
            if args.db:
                _drop(args.db, db.rpartition("schema=")[2])


def _drop(url: str, schema: str) -> None:
    import asyncio

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
