"""Budgets on the command line, against a journal a live worker runs: ``budget`` raises a
cap and the run goes on, ``usage`` and the ``runs`` column say what was spent, ``show``
tells a held step from a wait, and ``respond RUN stop`` ends the wait."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .processes import cli, durable_process, wait_for_status


@pytest.fixture
def worker(db: Path | str) -> subprocess.Popen[str]:
    """``durable worker tests.budget_app`` on the test's journal."""
    return durable_process("--db", str(db), "worker", "tests.budget_app", ready="durable worker:")


def start(db: Path | str, workflow: str, run_id: str) -> None:
    done = cli(db, "start", workflow, "--module", "tests.budget_app", "--run-id", run_id)
    assert done.returncode == 0, done.stderr


def asked(db: Path | str, run_id: str, wait_id: str) -> dict[str, Any]:
    """The run's open question ``wait_id``, once it is asked."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = json.loads(cli(db, "show", run_id, "--json").stdout)
        for wait in shown["pending_waits"]:
            if wait["wait_id"] == wait_id:
                return dict(wait)
    raise AssertionError(f"run {run_id} never asked {wait_id}")


def output(db: Path | str, run_id: str) -> Any:
    wait_for_status(db, "completed", run_id)
    return json.loads(cli(db, "show", run_id, "--json").stdout)["run"]["output"]


def test_raise_a_budget_then_stop_and_see_the_spend(
    db: Path | str, worker: subprocess.Popen[str]
) -> None:
    start(db, "budget.spender", "s")
    question = asked(db, "s", "budget:2")
    assert question["input_type"] == "budget" and question["options"] == [
        {"id": "stop", "label": "Stop"}
    ]
    assert question["budget"]["spent"] == {"usd": 1.0, "tokens": 200}

    table = cli(db, "runs").stdout.splitlines()
    assert table[0].split()[-1] == "SPEND"
    assert table[1].endswith("$1.0000, 200 tokens (budget $1)")
    (listed,) = json.loads(cli(db, "runs", "--json").stdout)
    assert listed["spend"] == {"usd": 1.0, "tokens": 200}
    used = json.loads(cli(db, "usage", "s", "--json").stdout)
    assert used["by_step"] == {
        "0": {"step": "paid", "usd": 0.5, "tokens": 100, "attempts": 1},
        "1": {"step": "paid", "usd": 0.5, "tokens": 100, "attempts": 1},
    }
    assert used["budget"] == {"usd": 1.0, "tokens": None} and used["budget_run_id"] == "s"

    for args, code, message in (
        (("budget", "s", "--usd", "0.5"), 1, "below what run 's' spent"),
        (("budget", "s", "--usd", "lots"), 2, "'lots' is not an amount of dollars"),
        (("budget", "s", "--tokens", "1.5"), 2, "not a whole number of tokens"),
        (("budget", "s"), 2, "--usd AMOUNT, --tokens N"),
        (("budget", "nope", "--usd", "5"), 1, "no run with id 'nope'"),
        (("respond", "s", "yes"), 1, "not an answer to a budget question"),
    ):
        refused = cli(db, *args)
        assert refused.returncode == code, refused.stderr
        assert code == 2 or refused.stderr.count("\n") == 1
        assert message in refused.stderr and "Traceback" not in refused.stderr
    assert asked(db, "s", "budget:2")  # nothing refused was written

    raised = cli(db, "budget", "s", "--usd", "1.5", "--json")
    assert raised.returncode == 0, raised.stderr
    assert json.loads(raised.stdout) == {
        "budget_run_id": "s",
        "budget": {"usd": 1.5, "tokens": None},
    }
    asked(db, "s", "budget:3")  # the held step ran, and the next one asks again
    shown = cli(db, "show", "s").stdout
    assert "#2   step paid: completed" in shown and "then raised), spent $0.5000" in shown
    assert "[budget:3] run 's' and the runs below it spent $1.5000" in shown
    assert "spend     $1.5000, 300 tokens" in shown
    assert (
        "#3   budget of run s reached: $1.5000 of $1.5; waiting (durable budget s --usd N" in shown
    )

    stopped = cli(db, "respond", "s", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert output(db, "s") == [0, 1, 2, -1]
    assert "answered 'stop', the call did not start" in cli(db, "show", "s").stdout


def test_a_child_spends_from_its_parents_budget_and_a_raise_names_the_holder(
    db: Path | str, worker: subprocess.Popen[str]
) -> None:
    start(db, "budget.tree", "t")
    start(db, "budget.free", "f")
    asked(db, "t.0", "budget:2")  # the child is held: its parent's cap is reached
    used = json.loads(cli(db, "usage", "t", "--json").stdout)
    assert (used["tokens"], used["own"], used["by_step"]) == (200, {"usd": 0, "tokens": 0}, {})
    kid = cli(db, "usage", "t.0").stdout
    assert "budget    usd no cap, tokens 150 (held by t)" in kid
    assert "#1    paid  $0.5000, 100 tokens  (1 attempt(s))" in kid

    raised = cli(db, "budget", "t.0", "--tokens", "1_000")
    assert raised.returncode == 0, raised.stderr
    assert raised.stdout == "raised the budget of run t to usd no cap, tokens 1000\n"
    assert output(db, "t") == 3
    assert json.loads(cli(db, "usage", "t", "--json").stdout)["tokens"] == 300

    assert output(db, "f") == 7
    none = cli(db, "budget", "f", "--usd", "5")
    assert none.returncode == 1 and "has no budget over it" in none.stderr
    assert "budget    none" in cli(db, "usage", "f").stdout
