"""Queue limits over real worker processes on one database, measured from step bodies."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

import durable

from . import child
from .processes import lines, sigkill, spawn_worker, wait_for_line


def slot_intervals(effects: Path) -> dict[str, tuple[str, float, float]]:
    """Each run's last attempt at its slot step: (pid, start, end); end is inf if none."""
    started: dict[str, tuple[str, float]] = {}
    ended: dict[str, float] = {}
    for line in lines(effects):
        found = re.match(r"q(start|end) (\S+) .*pid=(\d+) at=([\d.]+)", line)
        if found is None:
            continue
        kind, run_id, pid, moment = found.groups()
        if kind == "start":
            started[run_id] = (pid, float(moment))
        else:
            ended[run_id] = float(moment)
    return {
        run_id: (pid, start, ended.get(run_id, float("inf")))
        for run_id, (pid, start) in started.items()
    }


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = current = 0
    for _, change in points:  # an end sorts before a start at the same moment
        current += change
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize("workers", [2, 3])
async def test_concurrency_and_per_runtime_limits_hold_over_worker_processes(
    db: Path, tmp_path: Path, workers: int
) -> None:
    effects = tmp_path / "effects.log"
    procs = [spawn_worker(db, effects) for _ in range(workers)]
    try:
        async with durable.Runtime(db, recover=False) as client:
            handles = [await client.start(child.limited, i) for i in range(12)]
            assert [await h.result(timeout=60) for h in handles] == list(range(12))
    finally:
        for proc in procs:
            proc.terminate()
            proc.communicate(timeout=30)
    intervals = slot_intervals(effects)
    assert len(intervals) == 12
    assert most_at_once([(s, e) for _, s, e in intervals.values()]) <= 2  # concurrency=2
    pids = {pid for pid, _, _ in intervals.values()}
    assert len(pids) >= 2  # the work was spread
    for pid in pids:  # per_runtime=1
        assert most_at_once([(s, e) for p, s, e in intervals.values() if p == pid]) == 1


async def test_a_killed_worker_gives_its_slots_back_and_its_runs_resume_elsewhere(
    db: Path, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    holder = spawn_worker(db, effects, BLOCK="slot")
    async with durable.Runtime(db, recover=False) as client:
        handles = [await client.start(child.slots, i) for i in range(4)]
        deadline = time.monotonic() + 30
        while len([line for line in lines(effects) if line.startswith("qstart")]) < 2:
            assert time.monotonic() < deadline, lines(effects)
            time.sleep(0.01)
        assert (await client.queue_status(child.SLOTS)).running == 2  # both slots held
        sigkill(holder)  # type: ignore[arg-type]
        taker = spawn_worker(db, effects)
        try:
            assert [await h.result(timeout=60) for h in handles] == [0, 1, 2, 3]
        finally:
            taker.terminate()
            taker.communicate(timeout=30)
    wait_for_line(effects, "qend")
    intervals = slot_intervals(effects)
    after = [(s, e) for pid, s, e in intervals.values() if pid == str(taker.pid)]
    assert len(after) == 4 and most_at_once(after) <= 2
    retried = [line for line in lines(effects) if line.startswith("qstart") and " 2 pid=" in line]
    assert len(retried) == 2  # the two interrupted runs, as their second attempt


async def test_a_rate_holds_over_worker_processes(db: Path, tmp_path: Path) -> None:
    """rate=(3, 1.0): no more than three runs admitted in any second, over two workers.
    Measured at the step bodies, which start a commit or two after admission: a window
    of 0.9 s leaves them that much room."""
    effects = tmp_path / "effects.log"
    procs = [spawn_worker(db, effects) for _ in range(2)]
    try:
        async with durable.Runtime(db, recover=False) as client:
            handles = [await client.start(child.rated, i) for i in range(9)]
            assert [await h.result(timeout=60) for h in handles] == list(range(9))
    finally:
        for proc in procs:
            proc.terminate()
            proc.communicate(timeout=30)
    starts = sorted(start for _, start, _ in slot_intervals(effects).values())
    assert len(starts) == 9
    for i, first in enumerate(starts):
        assert len([s for s in starts[i:] if s < first + 0.9]) <= 3, starts
    assert starts[-1] - starts[0] >= 1.9  # three windows' worth: the rate really held them
