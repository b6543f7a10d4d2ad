"""``durable check --module MODULE``, the gate before a deploy: every unfinished run is
replayed against the code to deploy (a real module file, changed between runs of the
gate), and the exit code says whether anything needs a human first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from .processes import (
    ROOT,
    cli,
    durable_command,
    durable_process,
    held_mid_step,
    lines,
    spawn,
    spawn_worker,
    wait_for_line,
    wait_for_status,
)

SHIP = """
import durable


@durable.step
async def reserve(item: str) -> str:
    return f"reserved {item}"


@durable.step
async def weigh(item: str) -> int:
    return len(item)


@durable.workflow(name="shop.ship")
async def ship(ctx: durable.WorkflowContext, item: str) -> str:
{before}    reserved = await reserve(item)
    answer = await ctx.wait_for_user(
        "Ship it?", input_type="approval",
        options=[{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}],
    )
    return f"{reserved}: {answer}"
"""

ORIGINAL = ""
DIVERGING = "    await weigh(item)\n"
"""A step added before the first one: a run that already reserved no longer replays."""
PATCHED = '    if ctx.patched("weigh-first"):\n        await weigh(item)\n'
"""The same change behind ctx.patched: runs already past that point keep the old path."""


def write_module(directory: Path, before: str) -> None:
    (directory / "shop.py").write_text(SHIP.replace("{before}", before))
    for cached in (directory / "__pycache__").glob("shop.*"):
        cached.unlink()  # a rewrite within the same second must not load the old bytecode


def gate(db: Path | str, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``durable --db DB check ARGS...`` importing from ``directory`` too."""
    path = os.pathsep.join([str(ROOT), str(directory)])
    return durable_command("--db", str(db), "check", *args, PYTHONPATH=path)


def shop_worker(db: Path | str, directory: Path) -> subprocess.Popen[str]:
    path = os.pathsep.join([str(ROOT), str(directory)])
    return durable_process(
        "--db", str(db), "worker", "--module", "shop", ready="durable worker:", PYTHONPATH=path
    )


def stop(worker: subprocess.Popen[str]) -> None:
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err


def test_check_fails_on_a_diverging_run_and_passes_after_the_fix(
    db: Path | str, tmp_path: Path
) -> None:
    write_module(tmp_path, ORIGINAL)
    worker = shop_worker(db, tmp_path)
    start = ("start", "shop.ship", "--module", "shop", '["box"]', "--run-id", "order-1")
    path = os.pathsep.join([str(ROOT), str(tmp_path)])
    started = durable_command("--db", str(db), *start, PYTHONPATH=path)
    assert started.returncode == 0, started.stderr
    wait_for_status(db, "waiting", "order-1")
    stop(worker)
    clean = gate(db, tmp_path, "--module", "shop")
    assert (clean.returncode, clean.stdout.strip()) == (0, "ok: nothing needs a human")

    write_module(tmp_path, DIVERGING)
    diverged = gate(db, tmp_path, "--module", "shop")
    assert diverged.returncode == 4, diverged.stderr
    assert "diverged run      order-1 (shop.ship, waiting)" in diverged.stdout
    assert "at position 0 the journal has step 'reserve' but this code calls step 'weigh'" in (
        diverged.stdout
    )
    report = json.loads(gate(db, tmp_path, "shop", "--json").stdout)  # MODULE positional too
    assert report["ok"] is False
    (run,) = report["diverged_runs"]
    assert (run["run_id"], run["position"]) == ("order-1", 0)
    assert (run["expected"], run["received"]) == ("step 'reserve'", "step 'weigh'")
    assert cli(db, "show", "order-1", "--json").returncode == 0  # the check wrote nothing:
    assert json.loads(cli(db, "show", "order-1", "--json").stdout)["run"]["status"] == "waiting"

    write_module(tmp_path, PATCHED)
    fixed = gate(db, tmp_path, "--module", "shop")
    assert (fixed.returncode, fixed.stdout.strip()) == (0, "ok: nothing needs a human"), (
        fixed.stdout + fixed.stderr
    )
    worker = shop_worker(db, tmp_path)  # the fixed code runs the parked run to its end
    assert cli(db, "respond", "order-1", "yes").returncode == 0
    wait_for_status(db, "completed", "order-1")
    stop(worker)
    assert json.loads(cli(db, "show", "order-1", "--json").stdout)["run"]["output"] == (
        "reserved box: yes"
    )


def test_check_fails_when_the_modules_lack_a_running_workflow(
    db: Path | str, tmp_path: Path
) -> None:
    write_module(tmp_path, ORIGINAL)
    worker = shop_worker(db, tmp_path)
    path = os.pathsep.join([str(ROOT), str(tmp_path)])
    durable_command("--db", str(db), "start", "shop.ship", '["box"]', "-m", "shop", PYTHONPATH=path)
    wait_for_status(db, "waiting")
    stop(worker)
    lacking = gate(db, tmp_path, "--module", "tests.child")
    assert lacking.returncode == 4
    assert "unknown workflow" in lacking.stdout and "shop.ship version 1" in lacking.stdout
    unchecked = gate(db, tmp_path)  # without modules nothing is replayed, and it says so
    assert unchecked.returncode == 0
    assert "no --module given: runs were not replayed" in unchecked.stdout


def test_check_fails_on_a_step_interrupted_by_a_crash(db: Path | str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    worker = held_mid_step(db, effects)
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=20)
    assert worker.returncode == -signal.SIGKILL
    crashed = cli(db, "check", "--module", "tests.child")
    assert crashed.returncode == 4
    assert "interrupted step  run t position 1 'second' attempt 1" in crashed.stdout


def test_check_fails_on_a_poison_run(db: Path | str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    for _ in range(3):  # its step SIGKILLs the process: the first life and two recoveries
        child = spawn(str(db), "poison", str(effects), DURABLE_MAX_RECOVERIES="2")
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
    survivor = spawn(str(db), "poison", str(effects), DURABLE_MAX_RECOVERIES="2")
    survivor.communicate(timeout=30)  # it fails the run with RECOVERY_LIMIT at once
    assert any("RECOVERY_LIMIT" in line for line in lines(effects))
    poisoned = cli(db, "check")
    assert poisoned.returncode == 4
    assert "poison run        run-poison (child.poison)" in poisoned.stdout
    assert json.loads(cli(db, "check", "--json").stdout)["poison_runs"] == ["run-poison"]


def test_a_step_already_run_again_after_its_interruption_does_not_block(
    db: Path | str, tmp_path: Path
) -> None:
    """The gate fails while an interrupted attempt is open, and passes once a worker has
    run the step again: the interruption stays listed, as history."""
    effects = tmp_path / "effects.log"
    worker = held_mid_step(db, effects)
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=20)
    assert cli(db, "check", "--module", "tests.child").returncode == 4
    again = spawn_worker(db, effects, BLOCK="second")
    try:
        wait_for_line(effects, "start second 2")  # run again, held there by this worker
        checked = cli(db, "check", "--module", "tests.child")
        assert checked.returncode == 0, checked.stdout
        assert "interrupted step  run t position 1 'second' attempt 1" in checked.stdout
    finally:
        again.terminate()
        again.communicate(timeout=20)
