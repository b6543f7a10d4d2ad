"""Durable time and human input across SIGKILL, with real processes and the real clock."""

from __future__ import annotations

import time
from pathlib import Path

from .processes import (
    finish,
    journal_value,
    last_open,
    lines,
    sigkill,
    spawn,
    wait_for_line,
    wait_for_status,
)


def test_sigkill_mid_sleep_waits_only_the_time_left(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    child = spawn(str(db), "sleeper", str(effects), "3")
    wait_for_status(db, "sleeping")
    sigkill(child)
    payload = journal_value(db, "SELECT payload FROM events WHERE kind = 'sleep.started'")
    wake_at = float(str(payload).split(":")[1].rstrip("}"))

    # Time passes while no process runs the workflow.
    while time.time() < wake_at - 1.5:
        time.sleep(0.01)
    finish(spawn(str(db), "sleeper", str(effects), "3"))
    opened = last_open(effects)

    woke = float(wait_for_line(effects, "woke").split()[1])
    assert wake_at <= woke < wake_at + 0.75, (woke - wake_at, woke - opened)
    assert woke < opened + 3 - 1.0  # a fresh 3 s sleep would end much later
    assert [line for line in lines(effects) if line.startswith("start first")] == [
        lines(effects)[1]
    ]


def test_sleep_whose_wake_up_passed_while_nothing_ran_resumes_at_once(
    db: Path, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    child = spawn(str(db), "sleeper", str(effects), "0.5")
    wait_for_status(db, "sleeping")
    sigkill(child)
    payload = journal_value(db, "SELECT payload FROM events WHERE kind = 'sleep.started'")
    wake_at = float(str(payload).split(":")[1].rstrip("}"))
    while time.time() < wake_at + 0.2:
        time.sleep(0.01)

    finish(spawn(str(db), "sleeper", str(effects), "0.5"))
    opened = last_open(effects)
    woke = float(wait_for_line(effects, "woke").split()[1])
    assert woke - opened < 0.5


def test_wait_for_user_survives_sigkill_and_an_answer_from_another_process(
    db: Path, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    child = spawn(str(db), "approval", str(effects))
    wait_for_status(db, "waiting")
    sigkill(child)

    # A second process answers while nothing runs the workflow.
    finish(spawn(str(db), "respond", str(effects), "run-approval", "yes"))
    assert journal_value(db, "SELECT status FROM runs") == "waiting"

    # A third process finishes it.
    finish(spawn(str(db), "approval", str(effects)))
    log = lines(effects)
    assert [line.split()[1] for line in log if line.startswith("start")] == ["first", "second"]
    assert any(line.startswith("answered yes") for line in log)
    assert log[-1].startswith("result 'yes'")


def test_answer_from_another_process_reaches_a_live_runtime_within_a_second(
    db: Path, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    live = spawn(str(db), "approval", str(effects))
    wait_for_status(db, "waiting")

    finish(spawn(str(db), "respond", str(effects), "run-approval", "no"))
    responded = float(wait_for_line(effects, "responded").split()[3])
    answered = float(wait_for_line(effects, "answered", live).split()[3])
    finish(live)
    assert 0 <= answered - responded < 1.0
    assert lines(effects)[-1].startswith("result 'no'")
