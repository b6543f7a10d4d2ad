"""durable.testing.explore_crashes: a crash after every commit, and what recovery must keep."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

import durable
from durable.testing import explore_crashes, scoped_workflows

BODIES: Counter[int] = Counter()


async def work(i: int) -> int:
    BODIES[i] += 1
    return i * i


@durable.workflow(name="explore.twenty")
async def twenty(ctx: durable.WorkflowContext, n: int) -> dict[str, object]:
    total = 0
    for i in range(n):
        total += await ctx.step(f"work-{i}", work, i)
        if i == n // 2:
            await ctx.sleep(3600)
    approved = await ctx.wait_for_user("Ship it?", input_type="approval", timeout=86400)
    note = await ctx.wait_for_event("note")
    return {"total": total, "approved": approved, "note": note}


async def test_a_twenty_step_workflow_is_explored_at_every_commit_quickly() -> None:
    BODIES.clear()
    began = time.perf_counter()
    report = await explore_crashes(twenty, 20, answers={"Ship it?": "yes", "note": "hi"})
    took = time.perf_counter() - began
    print(f"explored {len(report.crash_points)} crash points in {took:.2f} s")
    assert took < 10  # generous: about a second here; DESIGN aims at under two
    assert report.outcome == {
        "total": sum(i * i for i in range(20)),
        "approved": "yes",
        "note": "hi",
    }
    assert [point.commit for point in report.crash_points] == list(range(report.commits))
    assert report.commits >= 40  # a start and an end per step, the sleep, the waits
    assert report.crash_points[0].call == "the run's start"
    # A crash between a step's start and its completion's commit re-runs that body once.
    assert any(point.rerun_steps == 1 for point in report.crash_points)
    assert all(point.rerun_steps <= 1 for point in report.crash_points)
    # Each body ran at least once per journal tried, and never again once committed.
    assert min(BODIES.values()) >= report.commits


SEEN = Counter[str]()


@durable.workflow(name="explore.outside_state")
async def outside_state(ctx: durable.WorkflowContext) -> str:
    SEEN["entries"] += 1  # state outside the journal: a replay sees another value
    first = await ctx.step("first", work, 1)
    if SEEN["entries"] % 2:
        await ctx.step("odd", work, 2)
    else:
        await ctx.step("even", work, 3)
    return f"{first}"


async def test_a_workflow_that_branches_on_state_outside_the_journal_is_caught() -> None:
    SEEN.clear()
    with pytest.raises(AssertionError) as caught:
        await explore_crashes(outside_state)
    message = str(caught.value)
    assert "crash right after commit" in message
    assert "NonDeterminismError" in message and "position 1" in message
    print(message)


@durable.workflow(name="explore.asks")
async def asks(ctx: durable.WorkflowContext) -> str:
    answer: str = await ctx.wait_for_user("Name?")
    return answer


async def test_a_question_without_an_answer_is_named() -> None:
    with pytest.raises(AssertionError, match=r"asks 'Name\?'.*answers="):
        await explore_crashes(asks)


@durable.workflow(name="explore.fails")
async def fails(ctx: durable.WorkflowContext) -> None:
    await ctx.step("one", work, 1)
    raise RuntimeError("always")


async def test_the_same_error_after_every_crash_passes() -> None:
    report = await explore_crashes(fails)
    assert report.outcome["failed"]["message"] == "always"


@durable.step(retry=durable.RetryPolicy(max_attempts=2, initial_interval=0.01))
async def declined() -> None:
    raise ValueError("card declined")


@durable.workflow(name="explore.step_fails")
async def step_fails(ctx: durable.WorkflowContext) -> None:
    await declined()


async def test_a_step_that_fails_for_good_may_take_an_attempt_more_after_a_crash() -> None:
    report = await explore_crashes(step_fails)
    failed = report.outcome["failed"]
    assert (failed["code"], failed["attempts"]) == ("STEP_FAILED", 2)
    # A crash right after an attempt's start cuts that attempt short: it does not count
    # against max_attempts, so the recovered run fails after one attempt more.
    assert any(point.rerun_steps for point in report.crash_points)


def _example(name: str) -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"explored_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


async def test_the_examples_survive_a_crash_after_every_commit() -> None:
    with scoped_workflows():  # both examples name their workflow "checkout"
        quickstart = _example("quickstart")
        report = await explore_crashes(quickstart.checkout, "o-1", answers={"Ship it?": "yes"})
        assert report.outcome["approved"] is True
    with scoped_workflows():
        crash_recovery = _example("crash_recovery")
        report = await explore_crashes(crash_recovery.checkout, "o-2")
        assert report.outcome["tracking"] == "trk_o-2"
    assert any(point.rerun_steps for point in report.crash_points)
