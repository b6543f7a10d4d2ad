"""Crash recovery with real processes: SIGKILL mid-step, resume in a new process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import durable

from . import child as child_program  # registers its workflows here too, for check()
from .processes import finish, kill_mid_step, lines, sigkill, spawn, wait_for_line


def test_sigkill_mid_step_resumes_without_rerunning_completed_steps(
    db: Path, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    kill_mid_step(db, effects, "second")

    finish(spawn(str(db), "three_steps", str(effects)))

    log = lines(effects)
    starts = [line.split()[1:4] for line in log if line.startswith("start")]
    assert starts == [
        ["first", "1", "none"],
        ["second", "1", "none"],
        ["second", "2", "gated_not_completed"],
        ["third", "1", "none"],
    ]
    assert log[-1].startswith("result ['first-done', 'second-done', 'third-done']")


def test_retry_context_after_sigkill_is_truthful(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    first_attempt = kill_mid_step(db, effects, "second")
    finish(spawn(str(db), "three_steps", str(effects)))

    second_attempt = wait_for_line(effects, "start second 2")
    _, _, _, status, key, gates, completions = second_attempt.split()[:7]
    assert (status, gates, completions) == ("gated_not_completed", "gates=2", "completions=0")
    assert key == first_attempt.split()[4]
    assert first_attempt.split()[5:7] == ["gates=1", "completions=0"]


async def test_check_after_sigkill_names_the_interrupted_step_and_orphaned_run(
    db: Path, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    kill_mid_step(db, effects, "second")

    async with durable.Runtime(db, recover=False) as rt:
        report = await rt.check()
    assert not report.ok
    (step,) = report.interrupted_steps
    assert (step.run_id, step.step, step.position, step.attempt, step.retried) == (
        "run-three_steps",
        "second",
        1,
        1,
        False,
    )
    assert [run.run_id for run in report.orphaned_runs] == ["run-three_steps"]
    assert report.unregistered_runs == []  # child_program is imported, so registered here
    assert child_program.three_steps.name == "child.three_steps"


def test_at_most_once_step_killed_mid_body_is_not_run_again(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    child = spawn(str(db), "pay_once", str(effects), block="pay")
    wait_for_line(effects, "start pay 1", child)
    sigkill(child)

    finish(spawn(str(db), "pay_once", str(effects)))

    log = lines(effects)
    assert [line for line in log if line.startswith("start pay")] == [
        next(line for line in log if line.startswith("start pay 1"))
    ]
    assert log[-1].startswith("result 'interrupted'")


async def test_journal_after_crash_shows_the_open_attempt(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    kill_mid_step(db, effects, "second")

    async with durable.Runtime(db, recover=False) as rt:
        history = await rt.history("run-three_steps")
        run = await rt.get_run("run-three_steps")
    kinds = [(event["position"], event["kind"]) for event in history]
    assert kinds == [
        (0, "step.started"),
        (0, "step.completed"),
        (1, "step.started"),
    ]
    assert run.status == durable.RunStatus.RUNNING


def test_a_run_that_kills_its_process_each_time_is_failed_after_max_recoveries(
    db: Path, tmp_path: Path
) -> None:
    """A poison run: its step SIGKILLs the process on every attempt. Each restart
    recovers it; after two recoveries in a row without progress the third restart
    fails it with RECOVERY_LIMIT instead of dying again, and rt.resume lets a person
    try once more."""
    effects = tmp_path / "effects.log"
    for _ in range(3):  # the first life and two recoveries, each killed by the step
        child = spawn(str(db), "poison", str(effects), DURABLE_MAX_RECOVERIES="2")
        child.wait(timeout=30)
        assert child.returncode == -9
    survivor = spawn(str(db), "poison", str(effects), DURABLE_MAX_RECOVERIES="2")
    finish(survivor)  # it starts, fails the run at once, and its result() returns
    assert sum(line.startswith("poison") for line in lines(effects)) == 3
    assert any("RECOVERY_LIMIT" in line for line in lines(effects) if line.startswith("result"))
    assert sum(line.startswith("start first") for line in lines(effects)) == 1  # memoized

    async def check_and_resume() -> None:
        async with durable.Runtime(db, recover=False) as rt:
            info = await rt.get_run("run-poison")
            assert info.status is durable.RunStatus.FAILED
            assert info.error is not None and info.error["code"] == "RECOVERY_LIMIT"
            assert "rt.resume()" in info.error["message"]
            report = await rt.check(unregistered=False)
            assert [run.run_id for run in report.poison_runs] == ["run-poison"]
            assert not report.ok
            await rt.resume("run-poison")
            assert (await rt.check(unregistered=False)).poison_runs == []
            assert (await rt.get_run("run-poison")).status is durable.RunStatus.PENDING

    asyncio.run(check_and_resume())
    again = spawn(str(db), "poison", str(effects), DURABLE_MAX_RECOVERIES="2")
    again.wait(timeout=30)
    assert again.returncode == -9  # resumed by hand: it runs (and dies) once more
