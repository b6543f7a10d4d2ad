"""CPU per step of (b) on PostgreSQL: this process's, and that of its own server backends.

    python bench/pg_cpu.py --db postgresql://root@127.0.0.1/test

100 workflows of 100 steps at once at durability full, after one warm-up run. The
server's share is read from ``/proc`` for the backends whose client ports are this
process's sockets, so other sessions on the server do not count. Wall time moves with
the disk; CPU time per step is the steadier figure for comparing two trees (run each
with ``PYTHONPATH`` set to it, alternating).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import asyncpg  # noqa: E402
import run as bench  # noqa: E402
import workflows  # noqa: E402

RUNS, STEPS = 100, 100


def my_ports() -> set[int]:
    """The local TCP ports of this process's sockets."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(url: str) -> None:
    bench.POSTGRES = url
    with tempfile.TemporaryDirectory() as folder:
        async with bench.runtime(folder, "full") as rt:
            await (await rt.start(workflows.sequential, 2)).result()
            probe = await asyncpg.connect(url)
            try:
                mine = await probe.fetchval("SELECT pg_backend_pid()")
                rows = await probe.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])",
                    list(my_ports()),
                )
            finally:
                await probe.close()
            backends = [row[0] for row in rows if row[0] != mine]
            server, client, wall = (
                sum(map(cpu_seconds, backends)),
                time.process_time(),
                time.perf_counter(),
            )
            handles = [await rt.start(workflows.sequential, STEPS) for _ in range(RUNS)]
            await asyncio.gather(*(handle.result() for handle in handles))
            steps = RUNS * STEPS
            server = sum(map(cpu_seconds, backends)) - server
            client, wall = time.process_time() - client, time.perf_counter() - wall
    print(
        f"{steps / wall:,.0f} steps/s; CPU per step: server {server / steps * 1e6:.0f} us,"
        f" client {client / steps * 1e6:.0f} us ({len(backends)} backends)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a postgresql:// URL")
    asyncio.run(measure(parser.parse_args().db))


if __name__ == "__main__":
    main()
