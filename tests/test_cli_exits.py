"""Each command's exit codes as docs/cli.md lists them, on both backends, through real
processes: start as the docs write it, send with a key, rerun, a missing journal, a
missing extra, a busy port, and a run stopped mid-step shown as what it is."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .processes import (
    ROOT,
    cli,
    durable_command,
    held_mid_step,
    spawn_worker,
    wait_for_status,
)


@pytest.fixture
def worker(db: Path | str, tmp_path: Path) -> subprocess.Popen[str]:
    """``durable worker tests.child`` on the test's journal (which it creates)."""
    return spawn_worker(db, tmp_path / "effects.log")


def output(db: Path | str, run_id: str) -> object:
    wait_for_status(db, "completed", run_id)
    return json.loads(cli(db, "show", run_id, "--json").stdout)["run"]["output"]


def test_start_takes_module_anywhere_and_a_worker_runs_it(
    db: Path | str, worker: subprocess.Popen[str]
) -> None:
    for n, line in enumerate(
        (
            ("start", "child.ask_text", "--module", "tests.child", '["a"]'),  # as the docs
            ("start", "--module", "tests.child", "child.ask_text", '["b"]'),
            ("start", "child.ask_text", '["c"]', "-m", "tests.child"),
            ("--module", "tests.child", "start", "child.ask_text", '["d"]'),
        )
    ):
        started = cli(db, *line, "--run-id", f"r{n}")
        assert started.returncode == 0, (line, started.stderr)
        wait_for_status(db, "waiting", f"r{n}")  # on PostgreSQL too: started, not just a schema
        assert cli(db, "respond", f"r{n}", "ok").returncode == 0
    assert [output(db, f"r{n}") for n in range(4)] == ["a 'ok'", "b 'ok'", "c 'ok'", "d 'ok'"]
    usage = cli(db, "start", "child.ask_text", '["x"]')
    assert usage.returncode == 2 and "--module MODULE" in usage.stderr


def test_a_missing_journal_says_where_its_path_came_from(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.db")
    named = cli(missing, "start", "child.pair", "--module", "tests.child")
    assert named.returncode == 1
    assert f"no journal at {missing} (from --db): no such file" in named.stderr
    assert "pass --db" not in named.stderr
    from_env = durable_command("runs", DURABLE_DB=missing)
    assert from_env.returncode == 1 and "(from DURABLE_DB)" in from_env.stderr
    by_default = subprocess.run(
        [sys.executable, "-m", "durable", "runs"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert by_default.returncode == 1
    assert "no journal at durable.db (the default): pass --db" in by_default.stderr


def test_send_with_a_key_delivers_once(db: Path | str, worker: subprocess.Popen[str]) -> None:
    assert cli(db, "start", "child.ask_text", "-m", "tests.child", "--run-id", "s").returncode == 0
    wait_for_status(db, "waiting", "s")
    for _ in range(2):
        sent = cli(db, "send", "s", "note", '{"n": 1}', "--key", "delivery-1")
        assert sent.returncode == 0, sent.stderr
    assert cli(db, "send-event", "s", "note", "hello", "--text").returncode == 0
    not_json = cli(db, "send", "s", "note", "hello")
    assert not_json.returncode == 1 and "--text" in not_json.stderr
    messages = [e for e in json.loads(cli(db, "history", "s").stdout) if e["kind"] == "message"]
    assert [m["payload"] for m in messages] == [{"n": 1}, "hello"]
    assert cli(db, "send", "nope", "note", "1").returncode == 1
    assert cli(db, "send", "s").returncode == 2


def test_rerun_from_a_position(db: Path | str, worker: subprocess.Popen[str]) -> None:
    assert cli(db, "start", "child.pair", "-m", "tests.child", "--run-id", "p").returncode == 0
    assert output(db, "p") == ["a", "b"]
    rerun = cli(db, "rerun", "p", "--from", "1")
    assert rerun.returncode == 0, rerun.stderr
    assert output(db, "p") == ["a", "b"]  # stored pending by rerun, completed by the worker
    history = json.loads(cli(db, "history", "p").stdout)
    assert [e["payload"] for e in history if e["kind"] == "run.rerun"] == [{"position": 1}]
    again = [
        e["superseded"] for e in history if (e["kind"], e["position"]) == ("step.completed", 1)
    ]
    assert again == [True, False]  # position 1 ran twice; position 0 was kept
    assert cli(db, "start", "child.ask_text", "-m", "tests.child", "--run-id", "w").returncode == 0
    wait_for_status(db, "waiting", "w")
    refused = cli(db, "rerun", "w", "--from", "0")
    assert refused.returncode == 1 and "completed or failed" in refused.stderr
    assert cli(db, "rerun", "p").returncode == 2  # --from is required


def test_exit_codes_of_reading_and_operating_commands(
    db: Path | str, worker: subprocess.Popen[str]
) -> None:
    assert cli(db, "start", "child.pair", "-m", "tests.child", "--run-id", "done").returncode == 0
    wait_for_status(db, "completed", "done")
    for args, code in (
        (("runs",), 0),
        (("runs", "--status", "finished"), 2),
        (("show", "done"), 0),
        (("show", "nope"), 1),
        (("history", "done"), 0),
        (("history", "nope"), 1),
        (("export", "done"), 0),
        (("export", "nope"), 1),
        (("respond", "done", "yes"), 1),
        (("respond",), 2),
        (("cancel", "done"), 1),
        (("cancel",), 1),
        (("resume", "done"), 1),
        (("queues", "tests.child"), 0),
        (("schedules",), 0),
        (("check", "--module", "tests.child"), 0),
        (("check", "--module", "no_such_module"), 1),
        (("prune", "--older-than", "30d"), 0),
        (("prune",), 2),
        (("frobnicate",), 2),
    ):
        done = cli(db, *args)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, args


def test_worker_and_serve_exit_codes(db: Path | str, tmp_path: Path) -> None:
    assert cli(db, "worker").returncode == 2  # no module
    missing = cli(db, "worker", "no_such_module")
    assert missing.returncode == 1 and "cannot import workflow module 'no_such_module'" in (
        missing.stderr
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = cli(db, "serve", "tests.child", "--port", port)
    assert busy.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in busy.stderr
    without_uvicorn = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['uvicorn'] = None; from durable.cli import main;"
            f" sys.exit(main(['--db', {str(db)!r}, 'serve', 'tests.child']))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert without_uvicorn.returncode == 1
    assert "pip install 'durable-workflows[server]'" in without_uvicorn.stderr
    assert "cannot import workflow module" not in without_uvicorn.stderr


def test_a_run_stopped_mid_step_shows_it_waits_for_a_worker(db: Path | str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    blocked = held_mid_step(db, effects)
    (listed,) = json.loads(cli(db, "runs", "--json").stdout)
    assert listed["status"] == "running" and listed["owner"] is not None
    assert "status    running\n" in cli(db, "show", "t").stdout  # a live worker runs it

    blocked.send_signal(signal.SIGTERM)  # a clean stop, mid-step
    _, err = blocked.communicate(timeout=20)
    assert blocked.returncode == 0, err
    table = cli(db, "runs", "--status", "running").stdout  # still stored as running
    assert "running: waiting for a worker" in table
    assert "status    running: waiting for a worker" in cli(db, "show", "t").stdout
    (stopped,) = json.loads(cli(db, "runs", "--json").stdout)
    assert (stopped["status"], stopped["owner"]) == ("running", None)

    spawn_worker(db, effects)  # the next worker takes it and finishes it
    assert output(db, "t") == ["first-done", "second-done", "third-done"]
