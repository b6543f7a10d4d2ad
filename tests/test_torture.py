"""Crash torture: SIGKILL a busy worker at random moments until every run is done.

An append-only effects log, written by the step bodies themselves (fsynced),
then proves what the journal promises: every run ended with the right
result, no step body started again once a later step of its run had
started, and no at-most-once body ran twice.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from .processes import lines, sigkill, spawn

RUNS, STEPS, SEED = 30, 25, 20261122


def test_random_sigkills_lose_nothing_and_repeat_nothing(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    chance = random.Random(SEED)
    kills = 0
    started = time.monotonic()
    while True:
        worker = spawn(str(db), "torture", str(effects), str(RUNS), str(STEPS))
        # Kill after a random amount of progress: a seeded number of new effect lines.
        target = len(lines(effects)) + chance.randint(1, 150)
        while len(lines(effects)) < target and worker.poll() is None:
            time.sleep(0.002)
        if worker.poll() is None:
            sigkill(worker)
            kills += 1
            continue
        _, err = worker.communicate()
        assert worker.returncode == 0, err.decode()
        break
    elapsed = time.monotonic() - started
    log = lines(effects)
    assert log[-1] == "all done"
    assert kills >= 3, f"only {kills} kills: the torture did not torture"

    results = {line.split()[1]: line.split()[2:] for line in log if line.startswith("result")}
    assert sorted(results) == sorted(f"t{i}" for i in range(RUNS))
    begins: dict[tuple[str, int], int] = {}
    ends: dict[tuple[str, int], int] = {}
    furthest: dict[str, int] = {}
    for line in log:
        kind, *rest = line.split()
        if kind not in ("begin", "finish"):
            continue
        run, position = rest[0], int(rest[1])
        counter = begins if kind == "begin" else ends
        counter[run, position] = counter.get((run, position), 0) + 1
        if kind == "begin":
            assert position >= furthest.get(run, -1), f"{run} began {position} again: {line}"
            furthest[run] = position
    for run, values in results.items():
        for position, value in enumerate(values):
            once = position % 5 == 4
            began = begins.get((run, position), 0)
            if value == "interrupted":
                # Its start was journaled, then the process died: the body may or may
                # not have begun (the kill can land before its first effect).
                assert once and began <= 1
            else:
                assert value == f"{run}-{position}"
                assert began >= 1 and ends.get((run, position), 0) >= 1
            if once:
                assert began <= 1, f"at-most-once {run}/{position} ran twice"
    rerun = sum(count - 1 for count in begins.values())
    print(f"{kills} SIGKILLs, {RUNS} runs x {STEPS} steps, {rerun} bodies re-run, {elapsed:.1f} s")
