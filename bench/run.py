"""Benchmarks of durable against the floor of SQLite itself, measured in the same run.

    python bench/run.py                  # every scenario, durability full and normal
    python bench/run.py --quick          # smaller sizes, for a smoke test
    python bench/run.py --compare dbos   # DBOS Transact side by side (pip install -e .[bench])

The floor is one plain sqlite3 commit per row with the same PRAGMAs (WAL, the
durability's synchronous setting, the journal's checkpoint interval). Each
figure is printed with its ratio to that floor: how many floor commits one
step, one workflow, ... costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import workflows  # noqa: E402

import durable  # noqa: E402
from durable.store.sqlite.store import WAL_AUTOCHECKPOINT  # noqa: E402

SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}


@dataclass
class Sizes:
    sequential_steps: int = 2000
    concurrent_runs: int = 100
    steps_per_run: int = 20
    one_step_runs: int = 2000
    interrupted_runs: int = 10_000
    sleeping_runs: int = 100_000
    queued_runs: int = 10_000


QUICK = Sizes(500, 20, 10, 300, 500, 5_000, 1_000)


def floor_us(durability: str, rows: int = 3000) -> float:
    """Microseconds for one plain sqlite3 commit of one journal-like row."""
    with tempfile.TemporaryDirectory() as folder:
        conn = sqlite3.connect(Path(folder) / "floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[durability]}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
        conn.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, run_id TEXT, position INTEGER,"
            " kind TEXT, name TEXT, payload TEXT, created_at REAL)"
        )
        start = time.perf_counter()
        for i in range(rows):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO events (run_id, position, kind, name, payload, created_at)"
                " VALUES (?,?,?,?,?,?)",
                ("run", i, "step.completed", "noop", '{"result":1}', time.time()),
            )
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return elapsed / rows * 1e6


POSTGRES: str | None = None
"""With --db postgresql://...: scenarios run there, each in a schema of its own."""


def runtime(folder: str, durability: str, **options: object) -> durable.Runtime:
    if POSTGRES is not None:
        url = f"{POSTGRES}{'&' if '?' in POSTGRES else '?'}schema=bench_{uuid.uuid4().hex[:8]}"
        return durable.Runtime(url, durability=durability, **options)  # type: ignore[arg-type]
    return durable.Runtime(Path(folder) / "bench.db", durability=durability, **options)  # type: ignore[arg-type]


def postgres_floor_us(durability: str, rows: int = 3000) -> float:
    """Microseconds for one single-row commit from asyncpg on the same server."""
    import asyncpg

    async def measure() -> float:
        synchronous = "on" if durability == "full" else "off"
        conn = await asyncpg.connect(POSTGRES, server_settings={"synchronous_commit": synchronous})
        try:
            # A logged table (a temporary one skips the WAL, and so the flush).
            await conn.execute("CREATE TABLE bench_floor (id bigint PRIMARY KEY, payload text)")
            try:
                start = time.perf_counter()
                for i in range(rows):
                    await conn.execute("INSERT INTO bench_floor VALUES ($1, $2)", i, '{"r": 1}')
                return (time.perf_counter() - start) / rows * 1e6
            finally:
                await conn.execute("DROP TABLE bench_floor")
        finally:
            await conn.close()

    return asyncio.run(measure())


def drop_bench_schemas() -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES)
        try:
            names = await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench_%'"
            )
            for (name,) in names:
                await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


async def sequential_us_per_step(durability: str, sizes: Sizes) -> float:
    with tempfile.TemporaryDirectory() as folder:
        async with runtime(folder, durability) as rt:
            start = time.perf_counter()
            await (await rt.start(workflows.sequential, sizes.sequential_steps)).result()
            return (time.perf_counter() - start) / sizes.sequential_steps * 1e6


async def concurrent_steps_per_second(durability: str, sizes: Sizes) -> float:
    with tempfile.TemporaryDirectory() as folder:
        async with runtime(folder, durability) as rt:
            start = time.perf_counter()
            handles = await asyncio.gather(
                *(
                    rt.start(workflows.sequential, sizes.steps_per_run)
                    for _ in range(sizes.concurrent_runs)
                )
            )
            await asyncio.gather(*(handle.result() for handle in handles))
            elapsed = time.perf_counter() - start
    return sizes.concurrent_runs * sizes.steps_per_run / elapsed


async def one_by_one_us_per_workflow(durability: str, sizes: Sizes) -> float:
    with tempfile.TemporaryDirectory() as folder:
        async with runtime(folder, durability) as rt:
            start = time.perf_counter()
            for _ in range(sizes.one_step_runs):
                await (await rt.start(workflows.one_step)).result()
            return (time.perf_counter() - start) / sizes.one_step_runs * 1e6


UNQUEUED: dict[str, float] = {}
"""(g)'s baseline in the same run: the same trivial runs, started at once, no queue."""
ADMISSION: dict[str, tuple[float, float]] = {}
"""(g)'s admission latency by durability: p50 and p99 in ms."""


async def _start_all(rt: durable.Runtime, wf: durable.Workflow[..., int], count: int) -> None:
    handles = []
    for start in range(0, count, 1000):
        handles += await asyncio.gather(
            *(rt.start(wf, i) for i in range(start, min(count, start + 1000)))
        )
    await asyncio.gather(*(handle.result() for handle in handles))


async def queued_runs_per_second(durability: str, sizes: Sizes) -> float:
    """(g): trivial runs through a queue of concurrency 10. Admission latency: a slot freed
    (a run's step has returned) to the next run's step starting, pairing the i-th start
    after the first ten with the (i - 10)-th end."""
    count = sizes.queued_runs
    with tempfile.TemporaryDirectory() as folder:
        async with runtime(folder, durability) as rt:
            start = time.perf_counter()
            await _start_all(rt, workflows.unqueued, count)
            UNQUEUED[durability] = count / (time.perf_counter() - start)
        workflows.STAMPS["start"].clear()
        workflows.STAMPS["end"].clear()
        os.makedirs(Path(folder) / "queued")
        async with runtime(str(Path(folder) / "queued"), durability) as rt:
            start = time.perf_counter()
            await _start_all(rt, workflows.queued, count)
            elapsed = time.perf_counter() - start
    starts = sorted(workflows.STAMPS["start"])
    ends = sorted(workflows.STAMPS["end"])
    waits = sorted((starts[i] - ends[i - 10]) * 1000 for i in range(10, len(starts)))
    ADMISSION[durability] = (waits[len(waits) // 2], waits[int(len(waits) * 0.99)])
    return count / elapsed


def child(*args: str, block: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ}
    env.pop("DURABLE_BENCH_BLOCK", None)
    if block:
        env["DURABLE_BENCH_BLOCK"] = "1"
    return subprocess.Popen(
        [sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, text=True, env=env
    )


def recovery_seconds(durability: str, sizes: Sizes) -> float:
    """Runs killed by SIGKILL inside a step; seconds from opening a runtime to all complete."""
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "bench.db")
        victim = child("interrupted", db, durability, str(sizes.interrupted_runs), block=True)
        assert victim.stdout is not None
        if victim.stdout.readline().strip() != "ready":
            raise RuntimeError("the child did not get every run into its step")
        victim.send_signal(signal.SIGKILL)
        victim.wait()

        async def recover() -> float:
            start = time.perf_counter()
            async with durable.Runtime(db, durability=durability) as rt:
                runs = await rt.list_runs(limit=sizes.interrupted_runs)
                await asyncio.gather(*(rt.handle(run.run_id).result() for run in runs))
                return time.perf_counter() - start

        return asyncio.run(recover())


def sleeping_rss_mb(durability: str, sizes: Sizes) -> float:
    with tempfile.TemporaryDirectory() as folder:
        proc = child(
            "sleepers", str(Path(folder) / "bench.db"), durability, str(sizes.sleeping_runs)
        )
        out, _ = proc.communicate()
        return float(out.strip())


def reopen_seconds(durability: str, sizes: Sizes) -> float:
    """Seconds to open a runtime on a journal holding the sleeping runs of (e)."""
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "bench.db")
        child("sleepers", db, durability, str(sizes.sleeping_runs)).communicate()
        out, _ = child("reopen", db, durability, str(sizes.sleeping_runs)).communicate()
        return float(out.strip())


async def _child_reopen(db: str, durability: str, count: int) -> None:
    start = time.perf_counter()
    async with durable.Runtime(db, durability=durability) as rt:
        elapsed = time.perf_counter() - start
        if len(rt.loaded_runs) + len(rt.unloaded_runs) != count:
            raise RuntimeError("not every sleeping run was recovered")
        print(f"{elapsed:.3f}", flush=True)


async def _child_interrupted(db: str, durability: str, count: int) -> None:
    async with durable.Runtime(db, durability=durability) as rt:
        for start in range(0, count, 1000):
            await asyncio.gather(
                *(
                    rt.start(workflows.interrupted, i)
                    for i in range(start, min(count, start + 1000))
                )
            )
        while len(workflows.STARTED) < count:
            await asyncio.sleep(0.01)
        print("ready", flush=True)
        await asyncio.Event().wait()


async def _child_sleepers(db: str, durability: str, count: int) -> None:
    async with durable.Runtime(db, durability=durability) as rt:
        for start in range(0, count, 1000):
            await asyncio.gather(
                *(rt.start(workflows.sleeper) for _ in range(start, min(count, start + 1000)))
            )
        while len(await rt.list_runs(status="sleeping", limit=count)) < count:
            await asyncio.sleep(0.1)
        print(f"{_rss_mb():.1f}", flush=True)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass
class Row:
    label: str
    unit: str
    target: str
    measure: Callable[[str], float]
    ratio: Callable[[float, float], float] | None


def rows(sizes: Sizes) -> list[Row]:
    s = sizes
    return [
        Row(
            f"(a) 1 workflow x {s.sequential_steps} sequential steps",
            "us/step",
            "<= 60",
            lambda d: asyncio.run(sequential_us_per_step(d, s)),
            lambda value, floor: value / floor,
        ),
        Row(
            f"(b) {s.concurrent_runs} workflows x {s.steps_per_run} steps at once",
            "steps/s",
            ">= 30000",
            lambda d: asyncio.run(concurrent_steps_per_second(d, s)),
            lambda value, floor: (1e6 / floor) / value,
        ),
        Row(
            f"(c) {s.one_step_runs} one-step workflows, one by one",
            "us/wf",
            "<= 200",
            lambda d: asyncio.run(one_by_one_us_per_workflow(d, s)),
            lambda value, floor: value / floor,
        ),
        Row(
            f"(d) {s.interrupted_runs} runs SIGKILLed mid-step: open to done",
            "s",
            "<= 2",
            lambda d: recovery_seconds(d, s),
            lambda value, floor: value * 1e6 / s.interrupted_runs / floor,
        ),
        Row(
            f"(e) RSS with {s.sleeping_runs} sleeping runs",
            "MB",
            "<= 500",
            lambda d: sleeping_rss_mb(d, s),
            None,
        ),
        Row(
            f"(f) reopen a journal of {s.sleeping_runs} sleeping runs",
            "s",
            "",
            lambda d: reopen_seconds(d, s),
            None,
        ),
        Row(
            f"(g) {s.queued_runs} trivial runs, queue of concurrency 10",
            "runs/s",
            "<= 2x unq.",
            lambda d: asyncio.run(queued_runs_per_second(d, s)),
            None,
        ),
    ]


def _queue_lines(modes: list[str], measured: dict[tuple[str, str], float]) -> str:
    """(g)'s baseline (how many times faster the same runs go without a queue) and its
    admission latency."""
    baseline = f"{'    no queue, all at once; x = how much faster':<52}"
    latency = f"{'    admission latency p50 / p99 (target p50 < 5 ms)':<52}"
    for mode in modes:
        faster = UNQUEUED[mode] / measured["g", mode]
        baseline += f"{UNQUEUED[mode]:>10.1f} {'runs/s':<5}{faster:>7.1f}x"
        p50, p99 = ADMISSION[mode]
        latency += f"{f'{p50:.2f} / {p99:.1f} ms':>16}{'':>8}"
    return f"{baseline}\n{latency}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", help="scenario letters to run, e.g. abc")
    parser.add_argument("--durability", default="full,normal")
    parser.add_argument("--compare", choices=["dbos"], help="also run DBOS Transact")
    parser.add_argument("--db", help="a postgresql:// URL: run (a)-(c) there")
    args = parser.parse_args()
    if args.db:
        global POSTGRES, floor_us
        POSTGRES = args.db
        floor_us = postgres_floor_us
        args.only = args.only or "abc"
        print("PostgreSQL: " + args.db.split("@")[-1])
    sizes = QUICK if args.quick else Sizes()
    modes = args.durability.split(",")
    print("floor: one plain commit per row (sqlite3 with the same PRAGMAs, or asyncpg on the")
    print("same PostgreSQL with the same synchronous_commit), measured again just")
    print("before each figure (it moves from minute to minute); each ratio uses its own")
    print("\nratio = the figure in floor commits: us/step / floor, floor rows/s / steps/s, ...")
    header = f"{'scenario':<52}" + "".join(f"{mode:>16}{'ratio':>8}" for mode in modes)
    print(f"\n{header}{'target (normal)':>17}  floors (us)")
    measured: dict[tuple[str, str], float] = {}
    for row in rows(sizes):
        if args.only and row.label[1] not in args.only:
            continue
        cells, floors = "", []
        for mode in modes:
            floor = floor_us(mode)
            floors.append(f"{floor:.1f}")
            value = measured[row.label[1], mode] = row.measure(mode)
            ratio = "" if row.ratio is None else f"{row.ratio(value, floor):.1f}x"
            cells += f"{value:>10.1f} {row.unit:<5}{ratio:>8}"
        print(f"{row.label:<52}{cells}{row.target:>17}  {' / '.join(floors)}", flush=True)
        if row.label.startswith("(g)"):
            print(_queue_lines(modes, measured), flush=True)
    if args.compare == "dbos":
        import compare_dbos

        compare_dbos.main(sizes, modes, measured, POSTGRES, floor_us)
    if POSTGRES is not None:
        drop_bench_schemas()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, db, durability, count = sys.argv[2:6]
        children = {
            "interrupted": _child_interrupted,
            "sleepers": _child_sleepers,
            "reopen": _child_reopen,
        }
        asyncio.run(children[kind](db, durability, int(count)))
    else:
        main()
