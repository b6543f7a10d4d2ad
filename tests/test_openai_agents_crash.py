"""DurableRunner across SIGKILL: a refund agent on the OpenAI Agents SDK, in a child
process killed at random moments and started again, with a person approving the refund
from another thread through ``rt.respond``.

Each trial counts what ran (``tests/openai_agent_child.py`` logs every model call and
every call of the payment API): no model call's attempt runs twice, no more model calls
than the run's model steps plus one per kill, the refund happens exactly once, and the
run finishes with the model's answer.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

import durable

from .openai_agent_child import ANSWER
from .processes import finish, lines, sigkill, spawn, wait_for_line

TRIALS = 2
"""Trials per backend: each starts a few processes, and each takes seconds to import
the SDK; the first trial calls the model plainly, the second streams its events."""

MAX_KILLS = 3
SEED = int(os.environ.get("DURABLE_TEST_SEED", time.time_ns() % 2**32))


def spawn_agent(
    db: Path | str, effects: Path, run_id: str, stream: str | None
) -> subprocess.Popen[bytes]:
    args = [str(db), str(effects), run_id, *([stream] if stream else [])]
    return spawn(*args, program="tests.openai_agent_child")


class Approver:
    """A person in another thread, with a runtime of their own that runs nothing: says
    "yes" through ``rt.respond`` to every approval a run asks for."""

    def __init__(self, db: Path | str) -> None:
        self.db = db
        self.answered: list[str] = []
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Approver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.failure is not None:
            raise AssertionError(f"the approver failed: {self.failure!r}") from self.failure

    def _run(self) -> None:
        try:
            asyncio.run(self._answer())
        except BaseException as failure:  # said in the test's thread, by __exit__
            self.failure = failure

    async def _answer(self) -> None:
        async with durable.Runtime(self.db, recover=False) as rt:
            while not self._stop.is_set():
                for wait in await rt.pending_waits():
                    try:
                        await rt.respond(wait.run_id, "yes")
                    except durable.NoPendingWait:
                        continue  # answered a moment ago
                    self.answered.append(wait.run_id)
                await asyncio.sleep(0.02)


KILL_POINTS = [("open", 1), ("model", 1), ("model", 2), ("refund-call", 1), ("model", 3)]
"""Where a kill may land: once the log holds that many lines starting so (over every
life of the run), a random few milliseconds later; a point passed already in an earlier
life lands the kill just after the process opened its runtime."""


def drive(
    db: Path | str, effects: Path, run_id: str, stream: str | None, rng: random.Random
) -> int:
    """Run the agent to its end, SIGKILLing its process at random points (at least once,
    at most ``MAX_KILLS`` times); how many times it was killed."""
    kills = 0
    while True:
        child = spawn_agent(db, effects, run_id, stream)
        wait_for_line(effects, f"open {child.pid} ", child, timeout=60)
        if kills == MAX_KILLS or (kills > 0 and rng.random() < 0.3):
            finish(child, timeout=60)
            return kills
        prefix, count = rng.choice(KILL_POINTS)
        if not reached(effects, prefix, count, child):
            finish(child)
            return kills
        time.sleep(rng.uniform(0.0, 0.04))
        sigkill(child)
        kills += 1


def reached(effects: Path, prefix: str, count: int, child: subprocess.Popen[bytes]) -> bool:
    """Whether the log came to hold ``count`` lines starting with ``prefix`` while the
    child ran (False: it ended first)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sum(line.startswith(prefix) for line in lines(effects)) >= count:
            return True
        if child.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError(f"no {count} lines starting {prefix!r} after 60 s: {lines(effects)}")


async def journaled_steps(db: Path | str, run_id: str) -> list[tuple[int, str]]:
    async with durable.Runtime(db, recover=False) as rt:
        history = await rt.history(run_id)
    return [(e["position"], e["name"]) for e in history if e["kind"] == "step.completed"]


async def streamed_text(db: Path | str, run_id: str) -> tuple[str, int]:
    """The answer's text as a client that shows tokens live ends up showing it: each
    retract takes back the values of the attempt it names. Also how many retracts came."""
    shown: list[tuple[int | None, int | None, str]] = []
    retracts = 0
    async with durable.Runtime(db, recover=False) as rt:
        async for item in rt.read_stream(run_id, "agent"):
            if item.kind == "retract":
                retracts += 1
                shown = [s for s in shown if (s[0], s[1]) != (item.position, item.attempt)]
            elif item.value.get("type") == "response.output_text.delta":
                shown.append((item.position, item.attempt, item.value["delta"]))
    return "".join(text for _, _, text in shown), retracts


def check_trial(log: list[str], run_id: str, kills: int, steps: list[tuple[int, str]]) -> None:
    results = [line for line in log if line.startswith(f"result {run_id} ")]
    assert results and set(results) == {f"result {run_id} {ANSWER}"}
    assert [name for _, name in steps] == [
        "refunds.model",
        "refunds.tool.lookup_order",
        "refunds.tool.lookup_order",
        "refunds.model",
        "refunds.tool.issue_refund",
        "refunds.model",
    ]
    attempts: dict[int, list[str]] = defaultdict(list)
    for line in log:
        if line.startswith(f"model {run_id} "):
            _, _, position, attempt = line.split()
            attempts[int(position)].append(attempt)
    model_positions = [position for position, name in steps if name == "refunds.model"]
    assert sorted(attempts) == model_positions
    for model_position, tried in attempts.items():
        assert len(tried) == len(set(tried)), f"an attempt of model call {model_position} ran twice"
    assert sum(map(len, attempts.values())) <= len(model_positions) + kills
    refunds = [line for line in log if line.startswith("refund-done")]
    calls = [line for line in log if line.startswith("refund-call")]
    assert len(refunds) == 1
    assert 1 <= len(calls) <= 1 + kills
    assert len({line.split()[1] for line in calls}) == 1  # one idempotency key


@pytest.mark.timeout(600)
def test_refund_agent_killed_at_random_points_refunds_once_and_finishes(
    db: Path | str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    with Approver(db) as approver:
        for trial in range(TRIALS):
            run_id = f"refund-{trial}"
            stream = "agent" if trial % 2 else None  # the model's events to a stream, or not
            effects = tmp_path / f"effects-{trial}.log"
            kills = drive(db, effects, run_id, stream, rng)
            steps = asyncio.run(journaled_steps(db, run_id))
            try:
                check_trial(lines(effects), run_id, kills, steps)
                if stream is not None:
                    text, retracts = asyncio.run(streamed_text(db, run_id))
                    assert text == ANSWER, (text, retracts)
            except AssertionError as failed:
                raise AssertionError(
                    f"trial {trial} (DURABLE_TEST_SEED={SEED}, {kills} kills):"
                    f" {failed}\n" + "\n".join(lines(effects))
                ) from None
    assert set(approver.answered) == {f"refund-{trial}" for trial in range(TRIALS)}
