"""DBOS Transact's equivalents of scenarios (a)-(c), on SQLite or PostgreSQL, side by side.

Each durability runs in a child process of its own (DBOS is a process-wide
singleton). DBOS opens SQLite through SQLAlchemy and sets its own PRAGMAs;
this script sets ``synchronous`` to match durable's setting on every new
connection, and prints the PRAGMAs it actually ran with.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}


def child(durability: str, sizes: dict[str, int], postgres: str | None) -> dict[str, Any]:
    import sqlalchemy
    from dbos import DBOS, DBOSConfig

    @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "connect")
    def pragmas(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        if postgres is None:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {SYNCHRONOUS[durability]}")
        else:
            on = "on" if durability == "full" else "off"
            cursor.execute(f"SET synchronous_commit = {on}")
        cursor.close()

    @DBOS.step()
    def noop(i: int) -> int:
        return i

    @DBOS.workflow()
    def sequential(steps: int) -> int:
        for i in range(steps):
            noop(i)
        return steps

    @DBOS.workflow()
    def one_step() -> int:
        return noop(1)

    with tempfile.TemporaryDirectory() as folder:
        config: DBOSConfig = {
            "name": "durable-bench",
            "system_database_url": postgres or f"sqlite:///{Path(folder) / 'dbos.sqlite'}",
        }
        DBOS(config=config)
        DBOS.launch()
        try:
            start = time.perf_counter()
            sequential(sizes["sequential_steps"])
            a = (time.perf_counter() - start) / sizes["sequential_steps"] * 1e6

            start = time.perf_counter()
            handles = [
                DBOS.start_workflow(sequential, sizes["steps_per_run"])
                for _ in range(sizes["concurrent_runs"])
            ]
            for handle in handles:
                handle.get_result()
            b = sizes["concurrent_runs"] * sizes["steps_per_run"] / (time.perf_counter() - start)

            start = time.perf_counter()
            for _ in range(sizes["one_step_runs"]):
                one_step()
            c = (time.perf_counter() - start) / sizes["one_step_runs"] * 1e6
        finally:
            DBOS.destroy()
    return {"a": a, "b": b, "c": c}


def main(
    sizes: Any,
    modes: list[str],
    measured: dict[tuple[str, str], float],
    postgres: str | None,
    floor_us: Callable[[str], float],
) -> None:
    keys = {
        "sequential_steps": sizes.sequential_steps,
        "concurrent_runs": sizes.concurrent_runs,
        "steps_per_run": sizes.steps_per_run,
        "one_step_runs": sizes.one_step_runs,
    }
    backend = "SQLite, same PRAGMAs" if postgres is None else "the same PostgreSQL server"
    print(f"\nDBOS Transact on {backend}, same scenarios (x = how far durable is ahead)")
    # DBOS keeps its system tables in a database of its own, which it creates.
    system_db = "" if postgres is None else postgres.split("?")[0].rsplit("/", 1)[0] + "/dbos_bench"
    print(
        f"{'scenario':<12}"
        + "".join(f"{'dbos ' + m:>16}{'durable ' + m:>18}{'x':>7}" for m in modes)
    )
    dbos: dict[str, dict[str, float]] = {}
    floors: dict[str, float] = {}
    for mode in modes:
        out = subprocess.run(
            [sys.executable, __file__, mode, json.dumps(keys), system_db],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        dbos[mode] = json.loads(out.strip().splitlines()[-1])
        floors[mode] = floor_us(mode)
    for letter, unit in (("a", "us/step"), ("b", "steps/s"), ("c", "us/wf")):
        cells = ""
        for mode in modes:
            theirs, ours = dbos[mode][letter], measured.get((letter, mode))
            if ours is None:
                cells += f"{theirs:>10.1f} {unit:<5}{'-':>18}{'':>7}"
                continue
            ahead = ours / theirs if letter == "b" else theirs / ours
            cells += f"{theirs:>10.1f} {unit:<5}{ours:>12.1f} {unit:<5}{ahead:>6.1f}x"
        print(f"({letter}){'':<9}{cells}")
    # A sequential step commits at least once before the next step's body may run, so
    # no runtime's (a) can be faster than the floor: DBOS's (a) in floors is the
    # highest ratio any runtime could reach in this run.
    ceiling = "(a) ceiling: DBOS's step in floor commits, the most x a runtime could have:"
    for mode in modes:
        ceiling += f"  {mode} {dbos[mode]['a'] / floors[mode]:.1f}x (floor {floors[mode]:.1f} us)"
    print(ceiling)


if __name__ == "__main__":
    figures = child(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] or None)
    print(json.dumps(figures))
