"""The command line, each command through a real subprocess."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

import durable
from durable.testing import replay

from . import child as child_program
from .processes import (
    cli,
    finish,
    lines,
    spawn,
    spawn_worker,
    wait_for_line,
    wait_for_status,
)


def test_commands_against_a_journal_a_live_runtime_is_using(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    live = spawn(str(db), "approval", str(effects))
    wait_for_status(db, "waiting")

    runs = cli(db, "runs")
    assert runs.returncode == 0, runs.stderr
    header, row = runs.stdout.splitlines()
    assert header.split() == ["RUN", "ID", "WORKFLOW", "STATUS", "CREATED", "UPDATED", "SPEND"]
    assert row.split()[:3] == ["run-approval", "child.approval", "waiting"]
    listed = json.loads(cli(db, "runs", "--status", "waiting", "--json").stdout)
    assert [run["run_id"] for run in listed] == ["run-approval"]
    assert json.loads(cli(db, "runs", "--status", "completed", "--json").stdout) == []

    show = cli(db, "show", "run-approval")
    assert show.returncode == 0, show.stderr
    assert "status    waiting" in show.stdout
    assert "[user:1] Ship it?  (approval: yes=Yes, no=No)" in show.stdout
    assert "step first: completed after 1 attempt(s)" in show.stdout

    refused = cli(db, "respond", "run-approval", "maybe")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "not an answer" in refused.stderr
    assert "Traceback" not in refused.stderr

    answered = cli(db, "respond", "run-approval", "yes")
    assert answered.returncode == 0, answered.stderr
    finish(live, timeout=10)
    assert lines(effects)[-1].startswith("result 'yes'")
    assert "status    completed" in cli(db, "show", "run-approval").stdout


def test_history_and_export_documents(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    finish(spawn(str(db), "three_steps", str(effects)))
    history = json.loads(cli(db, "history", "run-three_steps").stdout)
    assert [e["kind"] for e in history] == ["step.started", "step.completed"] * 3
    exported = cli(db, "export", "run-three_steps")
    path = tmp_path / "run.json"
    path.write_text(exported.stdout)
    document = json.loads(exported.stdout)
    assert document["format"] == "durable.history" and document["run"]["status"] == "completed"
    asyncio.run(replay(child_program.three_steps, path))


def test_refusals_and_usage(db: Path, tmp_path: Path) -> None:
    finish(spawn(str(db), "three_steps", str(tmp_path / "effects.log")))
    for args, message in (
        (("show", "nope"), "no run with id 'nope'"),
        (("respond", "run-three_steps", "yes"), "no unanswered wait_for_user"),
        (("cancel", "run-three_steps"), "already ended completed"),
        (("resume", "run-three_steps"), "only a failed run"),
        (("send-event", "run-three_steps", "go"), "not stored"),
    ):
        result = cli(db, *args)
        assert result.returncode == 1, args
        assert message in result.stderr and "Traceback" not in result.stderr
    assert cli(db, "frobnicate").returncode == 2
    assert cli(db, "respond").returncode == 2
    missing = cli(tmp_path / "missing.db", "runs")
    assert missing.returncode == 1 and "no journal" in missing.stderr


def test_send_event_cancel_and_check(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    live = spawn(str(db), "approval", str(effects))
    wait_for_status(db, "waiting")
    sent = cli(db, "send-event", "run-approval", "note", '{"n": 1}', "--json")
    assert sent.returncode == 0, sent.stderr
    history = json.loads(cli(db, "history", "run-approval").stdout)
    assert history[-1]["kind"] == "message" and history[-1]["payload"] == {"n": 1}
    assert json.loads(cli(db, "check", "--json").stdout)["ok"] is True
    assert json.loads(cli(db, "check", "--json", "tests.golden").stdout)["unregistered_runs"] == [
        {"run_id": "run-approval", "workflow": "child.approval", "version": "1"}
    ]
    assert json.loads(cli(db, "check", "--json", "tests.child").stdout)["ok"] is True

    cancelled = cli(db, "cancel", "run-approval")
    assert cancelled.returncode == 0, cancelled.stderr
    live.communicate(timeout=10)
    assert live.returncode != 0  # its result() raised WorkflowCancelled
    assert "status    cancelled" in cli(db, "show", "run-approval").stdout


def test_resume_a_failed_run(db: Path) -> None:
    flag = {"fail": True}

    @durable.workflow(name="cli.fragile")
    async def fragile(ctx: durable.WorkflowContext) -> str:
        if flag["fail"]:
            raise RuntimeError("not yet")
        return "fixed"

    async def fail_then_fix() -> str:
        async with durable.Runtime(db) as rt:
            handle = await rt.start(fragile, run_id="f")
            with pytest.raises(durable.WorkflowFailed):
                await handle.result()
        resumed = cli(db, "resume", "f")
        assert resumed.returncode == 0, resumed.stderr
        flag["fail"] = False
        async with durable.Runtime(db) as rt:
            return str(await rt.handle("f").result(timeout=10))

    assert asyncio.run(fail_then_fix()) == "fixed"


def test_worker_runs_what_a_client_starts_and_stops_cleanly(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    worker = spawn_worker(db, effects)

    async def client() -> list[str]:
        async with durable.Runtime(db, recover=False) as rt:
            handle = await rt.start(child_program.three_steps, run_id="via-worker")
            result: list[str] = await handle.result(timeout=20)
            return result

    assert asyncio.run(client()) == ["first-done", "second-done", "third-done"]
    wait_for_line(effects, "end third")
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err
    assert "stopped cleanly" in out
