"""The refund agent in a real child process, SIGKILLed at random moments and restarted.

Each of two trials kills its child up to twice, after a random number of the fake model's and
fake APIs' calls (plus a random few milliseconds), then lets a last child finish. The
parent answers the approval through its own runtime, as a person would from the CLI.
After each kill the journal says which steps had completed; no later process may run
one of them again. Every run finishes with the answer, and the refund is made once.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import durable

from .processes import ROOT, SPAWNED
from .refund_agent import ANSWER_TOKENS

TRIALS = 2
KILLS_PER_TRIAL = 2
DEADLINE = 90.0


def spawn_agent(db: Path | str, run_id: str, effects: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DURABLE_TEST_EFFECTS": str(effects),
        "DURABLE_TEST_DAWDLE": "0.03",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.agent_child", str(db), run_id],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    SPAWNED.append(proc)  # killed at teardown if the test fails
    return proc


def effect_lines(effects: Path) -> list[str]:
    return effects.read_text().splitlines()


async def answer_when_asked(client: durable.Runtime, run_id: str) -> None:
    for wait in await client.pending_waits():  # the run may not exist yet
        if wait.run_id == run_id:
            await client.respond(run_id, "yes", wait_id=wait.wait_id)


async def run_until(
    client: durable.Runtime, proc: subprocess.Popen[bytes], run_id: str, effects: Path, lines: int
) -> bool:
    """Wait (answering the approval) until the effects file has ``lines`` lines or the
    child ends; True when the child ended."""
    deadline = time.monotonic() + DEADLINE
    while len(effect_lines(effects)) < lines and proc.poll() is None:
        assert time.monotonic() < deadline, f"the child made no progress: {effect_lines(effects)}"
        await answer_when_asked(client, run_id)
        await asyncio.sleep(0.01)
    return proc.poll() is not None


async def completed_positions(client: durable.Runtime, run_id: str) -> set[int]:
    return {
        event["position"]
        for event in await client.history(run_id)
        if event["kind"] == "step.completed"
    }


async def one_trial(db: Path | str, effects: Path, run_id: str, rng: random.Random) -> int:
    """Run the agent with up to two kills; returns how many landed before the run's end."""
    kills: list[tuple[set[int], int]] = []  # (steps completed at the kill, lines written by then)
    async with durable.Runtime(db, recover=False) as client:
        for _ in range(KILLS_PER_TRIAL):
            proc = spawn_agent(db, run_id, effects)
            target = len(effect_lines(effects)) + rng.randint(1, 8)
            if await run_until(client, proc, run_id, effects, target):
                break  # it finished before the kill was due
            await asyncio.sleep(rng.random() * 0.03)
            proc.kill()
            proc.wait()
            if any(line.startswith("result ") for line in effect_lines(effects)):
                proc = spawn_agent(db, run_id, effects)  # the kill came after the run's end
                break
            kills.append((await completed_positions(client, run_id), len(effect_lines(effects))))
        else:
            proc = spawn_agent(db, run_id, effects)  # the last child: left to finish
        while proc.poll() is None:
            await run_until(client, proc, run_id, effects, 10**9)
        _, stderr = proc.communicate()
        assert proc.returncode == 0, stderr.decode()
        info = await client.get_run(run_id)
    assert info.status == "completed" and info.output == "".join(ANSWER_TOKENS), info
    check_nothing_completed_ran_again(effects, kills)
    return len(kills)


def check_nothing_completed_ran_again(effects: Path, kills: list[tuple[set[int], int]]) -> None:
    lines = effect_lines(effects)
    for completed, written in kills:
        later = lines[written:]
        for position, pid in starts_by_pid_lines(later):
            assert position not in completed, (
                f"step at position {position} had completed before a kill, yet ran again in"
                f" process {pid}:\n" + "\n".join(lines)
            )
    refunds = {line.split("key=")[1] for line in lines if line.startswith("refund call")}
    assert len(refunds) == 1, f"refunds made under {len(refunds)} keys:\n" + "\n".join(lines)


def starts_by_pid_lines(lines: list[str]) -> list[tuple[int, int]]:
    found = []
    for line in lines:
        match = re.match(r"(model start|tool \w+|refund call) (\d+) \d+ pid=(\d+)", line)
        if match:
            found.append((int(match.group(2)), int(match.group(3))))
    return found


async def test_the_refund_agent_killed_at_random_moments_finishes_with_one_refund(
    db: Path | str, tmp_path: Path
) -> None:
    rng = random.Random(os.environ.get("DURABLE_TEST_SEED", "34"))
    landed = 0
    for trial in range(TRIALS):
        effects = tmp_path / f"effects-{trial}"
        effects.touch()
        landed += await one_trial(db, effects, f"agent-{trial}", rng)
    assert landed >= TRIALS, "too few kills landed mid-run to test anything"
