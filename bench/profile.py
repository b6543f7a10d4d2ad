"""Where the time of the benchmark scenarios goes (the figures in bench/README.md).

    python bench/profile.py split      # (a)-(c): time in commits vs. the rest
    python bench/profile.py frames     # WAL pages written per step (a) and workflow (c)
    python bench/profile.py gc         # (d): recovery with the cycle collector on and off
    python bench/profile.py instructions   # (a)-(c): CPU instructions per unit (valgrind)

All at durability normal, on a temporary journal.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402
import workflows  # noqa: E402

import durable  # noqa: E402
from durable.store.sqlite import writer as _writer  # noqa: E402

Scenario = Callable[[durable.Runtime, int], Awaitable[None]]


async def sequential(rt: durable.Runtime, n: int) -> None:
    await (await rt.start(workflows.sequential, n)).result()


async def concurrent(rt: durable.Runtime, n: int) -> None:
    handles = await asyncio.gather(*(rt.start(workflows.sequential, 20) for _ in range(n // 20)))
    await asyncio.gather(*(handle.result() for handle in handles))


async def one_by_one(rt: durable.Runtime, n: int) -> None:
    for _ in range(n):
        await (await rt.start(workflows.one_step)).result()


SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "a": ("step", sequential),
    "b": ("step", concurrent),
    "c": ("workflow", one_by_one),
}


def split(repeats: int = 3, n: int = 2000) -> None:
    """Microseconds per unit, and how many of them were spent committing batches."""
    in_commits = [0.0]
    real_commit = _writer.commit_batch

    def timed(conn: sqlite3.Connection, batch: list[Any], *rest: Any) -> list[Any]:
        start = time.perf_counter()
        try:
            return real_commit(conn, batch, *rest)
        finally:
            in_commits[0] += time.perf_counter() - start

    _writer.commit_batch = timed

    async def once(scenario: Scenario) -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as folder:
            async with bench.runtime(folder, "normal") as rt:
                in_commits[0] = 0.0
                start = time.perf_counter()
                await scenario(rt, n)
                return time.perf_counter() - start, in_commits[0]

    print(f"{'':4}{'us/unit':>10}{'in commits':>12}{'the rest':>10}   (best of {repeats})")
    for letter, (unit, scenario) in SCENARIOS.items():
        total, commits = min(asyncio.run(once(scenario)) for _ in range(repeats))
        per = 1e6 / n
        print(
            f"({letter}){total * per:10.1f}{commits * per:12.1f}{(total - commits) * per:10.1f}"
            f"   per {unit}"
        )


def frames(n: int = 300) -> None:
    """WAL frames (pages) each step or workflow writes, by the B-tree they belong to."""

    async def measure(letter: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            db = Path(folder) / "bench.db"
            async with durable.Runtime(db, durability="normal") as rt:
                unit, scenario = SCENARIOS[letter]
                await scenario(rt, 50)  # past the first pages of every table
                wal = Path(f"{db}-wal")
                offset = wal.stat().st_size
                await scenario(rt, n)
                data = wal.read_bytes()[offset:]
                with sqlite3.connect(db) as conn:
                    pages = dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
            counts: collections.Counter[str] = collections.Counter()
            for start in range(0, len(data) - 24, 4096 + 24):
                (page,) = struct.unpack(">I", data[start : start + 4])
                counts[pages.get(page, "(new page)")] += 1
            total = sum(counts.values()) / n
            parts = ", ".join(f"{name} {count / n:.2f}" for name, count in counts.most_common())
            print(f"({letter}) {total:.2f} pages per {unit}: {parts}")

    for letter in "ac":
        asyncio.run(measure(letter))


def collector(count: int = 10_000) -> None:
    """Recovery of runs SIGKILLed mid-step, with the cycle collector on and off."""
    with tempfile.TemporaryDirectory() as folder:
        base = str(Path(folder) / "base.db")
        victim = bench.child("interrupted", base, "normal", str(count), block=True)
        assert victim.stdout is not None
        if victim.stdout.readline().strip() != "ready":
            raise RuntimeError("the child did not get every run into its step")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        collections_run: collections.Counter[int] = collections.Counter()
        seconds_in: collections.Counter[int] = collections.Counter()
        started = [0.0]

        def note(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                collections_run[info["generation"]] += 1
                seconds_in[info["generation"]] += time.perf_counter() - started[0]

        async def recover(db: str) -> float:
            start = time.perf_counter()
            async with durable.Runtime(db, durability="normal") as rt:
                runs = await rt.list_runs(limit=count)
                await asyncio.gather(*(rt.handle(run.run_id).result() for run in runs))
            return time.perf_counter() - start

        for enabled in (True, False):
            db = str(Path(folder) / f"copy-{enabled}.db")
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(base + suffix):
                    shutil.copy(base + suffix, db + suffix)
            collections_run.clear()
            seconds_in.clear()
            gc.callbacks.append(note)
            if not enabled:
                gc.disable()
            try:
                seconds = asyncio.run(recover(db))
            finally:
                gc.enable()
                gc.callbacks.remove(note)
            label = "collector on " if enabled else "collector off"
            detail = ", ".join(
                f"gen{g}: {collections_run[g]} in {seconds_in[g]:.2f} s" for g in (0, 1, 2)
            )
            print(f"{label}: {count} runs recovered in {seconds:.2f} s ({detail})")


def instructions(small: int = 200, large: int = 1000) -> None:
    """Instructions per step or workflow, counted by valgrind's callgrind: the same
    figure from run to run however busy the machine is, so two versions can be
    compared where wall time moves by a fifth. The difference between two sizes
    takes start-up out. Only the event loop's thread is counted: what the reader
    and the checkpointer do on their own threads runs beside it (and a checkpoint
    comes every few thousand pages, so it would make the figure depend on the
    sizes). Time spent in the kernel (writing the WAL) is not counted."""
    if shutil.which("valgrind") is None:
        raise SystemExit("instructions needs valgrind (Debian: apt install valgrind)")

    def count(letter: str, n: int) -> int:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "callgrind.out"
            command = [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "once",
                letter,
                str(n),
            ]
            subprocess.run(command, capture_output=True, text=True, check=True)
            main_thread = Path(f"{out}-01").read_text()
        found = re.search(r"^totals: (\d+)", main_thread, re.MULTILINE)
        if found is None:
            raise RuntimeError("no instruction count in valgrind's output")
        return int(found.group(1))

    for letter, (unit, _) in SCENARIOS.items():
        sizes = (small // 2, large // 2) if letter == "c" else (small, large)
        per = (count(letter, sizes[1]) - count(letter, sizes[0])) / (sizes[1] - sizes[0])
        print(f"({letter}) {per / 1000:,.0f}k instructions per {unit}")


def once(letter: str, n: int) -> None:
    """One scenario on a fresh journal (what ``instructions`` runs under valgrind)."""

    async def run() -> None:
        with tempfile.TemporaryDirectory() as folder:
            async with bench.runtime(folder, "normal") as rt:
                await SCENARIOS[letter][1](rt, n)

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["split", "frames", "gc", "instructions", "once"])
    parser.add_argument("args", nargs="*", help="for once: a scenario letter and a size")
    args = parser.parse_args()
    if args.what == "once":
        once(args.args[0], int(args.args[1]))
    else:
        {"split": split, "frames": frames, "gc": collector, "instructions": instructions}[
            args.what
        ]()


if __name__ == "__main__":
    main()
