"""The command line as an operator uses it, against a journal a live worker is using:
where --db goes, starting runs, typed answers, times, bulk cancel and resume, prune."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest

import durable
from durable.cli import parser

from .processes import cli, durable_command, spawn_worker, wait_for_status

ZONED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d")


@pytest.fixture
def worker(db: Path | str, tmp_path: Path) -> subprocess.Popen[str]:
    """``durable worker tests.child`` on the test's journal."""
    return spawn_worker(db, tmp_path / "effects.log")


def started(db: Path | str, *args: str) -> str:
    done = cli(db, "start", *args, "--module", "tests.child", "--json")
    assert done.returncode == 0, done.stderr
    run_id: str = json.loads(done.stdout)["run_id"]
    return run_id


def result(db: Path | str, run_id: str) -> object:
    wait_for_status(db, "completed", run_id)
    shown = json.loads(cli(db, "show", run_id, "--json").stdout)
    return shown["run"]["output"]


def test_start_runs_in_the_worker_and_text_answers_stay_text(
    db: Path | str, worker: subprocess.Popen[str]
) -> None:
    text = started(db, "child.ask_text", '["hi"]', "--run-id", "as-text")
    wait_for_status(db, "waiting", "as-text")
    assert cli(db, "respond", "as-text", "007").returncode == 0
    assert result(db, "as-text") == "hi '007'"

    as_json = started(db, "child.ask_text", '{"greeting": "yo"}')
    assert as_json != text
    wait_for_status(db, "waiting", as_json)
    assert cli(db, "respond", as_json, "42", "--json").returncode == 0
    assert result(db, as_json) == "yo 42"

    unknown = cli(db, "start", "child.nope", "--module", "tests.child")
    assert unknown.returncode == 1 and "child.ask_text@1" in unknown.stderr
    bad = cli(db, "start", "child.ask_text", "{oops", "--module", "tests.child")
    assert bad.returncode == 1 and "is not JSON" in bad.stderr


def test_db_before_or_after_the_command_or_from_the_environment(
    db: Path | str, worker: subprocess.Popen[str]
) -> None:
    run_id = started(db, "child.pair")
    result(db, run_id)
    after = durable_command("runs", "--db", str(db), "--json")
    from_env = durable_command("runs", "--json", DURABLE_DB=str(db))
    assert after.returncode == 0 and from_env.returncode == 0, after.stderr + from_env.stderr
    assert [r["run_id"] for r in json.loads(after.stdout)] == [run_id]
    assert json.loads(from_env.stdout) == json.loads(after.stdout)
    version = durable_command("--version")
    assert version.returncode == 0 and re.match(r"durable \S+", version.stdout)


def test_times_carry_their_zone_and_parallel_steps_their_positions(
    db: Path | str, worker: subprocess.Popen[str]
) -> None:
    pair = started(db, "child.pair")
    asking = started(db, "child.ask_text")
    result(db, pair)
    wait_for_status(db, "waiting", asking)

    table = cli(db, "runs").stdout
    assert len(ZONED.findall(table)) == 4  # created and updated of both runs
    shown = cli(db, "show", pair).stdout
    assert "#0   step fetch: completed" in shown and "#1   step fetch: completed" in shown

    waiting = cli(db, "show", asking)
    assert re.search(r"\[user:0\] Your code\?  \(text\)  deadline " + ZONED.pattern, waiting.stdout)
    (wait,) = json.loads(cli(db, "show", asking, "--json").stdout)["pending_waits"]
    assert wait["deadline"] is not None and wait["deadline"] > wait["created_at"]
    events = json.loads(cli(db, "history", asking).stdout)
    started_wait = next(e for e in events if e["kind"] == "wait.started")
    assert started_wait["payload"]["deadline"] == wait["deadline"]  # ISO 8601, not seconds


def test_bulk_cancel_asks_first_and_acts_only_on_what_matches(
    db: Path | str, worker: subprocess.Popen[str]
) -> None:
    asking = [started(db, "child.ask_text") for _ in range(3)]
    pair = started(db, "child.pair")
    for run_id in asking:
        wait_for_status(db, "waiting", run_id)
    result(db, pair)

    declined = cli(db, "cancel", "--workflow", "child.ask_text", "--before", "0s", stdin="n\n")
    assert declined.returncode == 1 and "3 run(s)" in declined.stdout
    assert "not confirmed" in declined.stderr
    assert all(s == "waiting" for s in statuses(db, asking))

    confirmed = cli(db, "cancel", "--workflow", "child.ask_text", "--before", "0s", stdin="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert statuses(db, asking) == ["cancelled"] * 3
    assert statuses(db, [pair]) == ["completed"]  # another workflow, and finished
    nothing = cli(db, "cancel", "--workflow", "child.ask_text", "--yes")
    assert nothing.returncode == 0 and "no run matches" in nothing.stdout
    unnamed = cli(db, "cancel")
    assert unnamed.returncode == 1 and "name the runs" in unnamed.stderr


def test_prune_deletes_finished_runs_and_keeps_unfinished_ones(
    db: Path | str, worker: subprocess.Popen[str]
) -> None:
    done = started(db, "child.pair")
    waiting = started(db, "child.ask_text")
    result(db, done)
    wait_for_status(db, "waiting", waiting)
    pruned = cli(db, "prune", "--older-than", "0s")
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 1 run(s)" in pruned.stdout
    assert [r["run_id"] for r in json.loads(cli(db, "runs", "--json").stdout)] == [waiting]
    bad = cli(db, "prune", "--older-than", "a month")
    assert bad.returncode == 2 and "30d" in bad.stderr


def statuses(db: Path | str, run_ids: list[str]) -> list[str]:
    return [json.loads(cli(db, "show", r, "--json").stdout)["run"]["status"] for r in run_ids]


def test_bulk_resume_of_failed_runs(db: Path | str) -> None:
    @durable.workflow(name="cli_ops.fails")
    async def fails(ctx: durable.WorkflowContext) -> None:
        raise RuntimeError("not yet")

    async def fail_two() -> None:
        async with durable.Runtime(db) as rt:
            for run_id in ("f1", "f2"):
                with pytest.raises(durable.WorkflowFailed):
                    await (await rt.start(fails, run_id=run_id)).result(timeout=10)

    asyncio.run(fail_two())
    resumed = cli(db, "resume", "--workflow", "cli_ops.fails", "--yes")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("will be resumed") == 2
    assert statuses(db, ["f1", "f2"]) == ["pending", "pending"]


def test_usage_errors_list_what_is_valid_and_every_option_has_help(db: Path | str) -> None:
    wrong = cli(db, "runs", "--status", "done")
    assert wrong.returncode == 2
    assert "pending" in wrong.stderr and "cancelled" in wrong.stderr
    top = parser()
    texts = [top.format_help()]
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                texts.append(sub.format_help())
                for option in sub._actions:
                    assert option.help, f"{sub.prog} {option.dest} has no help"
    assert all("`" not in text for text in texts), "reStructuredText backticks in --help"
