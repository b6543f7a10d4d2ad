"""Helpers for tests that run real child processes and kill them with SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from .journal_sql import query

ROOT = Path(__file__).resolve().parent.parent
SPAWNED: list[subprocess.Popen[bytes]] = []


def spawn(
    *args: str, block: str | None = None, program: str = "tests.child", **extra_env: str
) -> subprocess.Popen[bytes]:
    """``python -m PROGRAM ARGS...`` in a process of its own (``tests.child`` unless
    given), with ``BLOCK`` and ``extra_env`` set; killed at the test's end if still up."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in (
        "BLOCK",
        "SLOW",
        "DURABLE_IDENTITY",
        "DURABLE_LEASE",
        "DURABLE_MAX_RECOVERIES",
        "DURABLE_ONLY",
    ):
        env.pop(name, None)
    if block is not None:
        env["BLOCK"] = block
    env.update(extra_env)
    proc = subprocess.Popen(
        [sys.executable, "-m", program, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    SPAWNED.append(proc)
    return proc


def cli(db: Path | str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``durable --db DB ARGS...`` in a process of its own."""
    return durable_command("--db", str(db), *args, stdin=stdin)


def durable_command(
    *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m durable ARGS...`` in a process of its own, with ``env`` added."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    environment.pop("DURABLE_DB", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "durable", *args],
        cwd=ROOT,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def kill_leftovers() -> None:
    """Kill children a failed or interrupted test left running."""
    while SPAWNED:
        proc = SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def kill_mid_step(db: Path, effects: Path, step: str, **extra_env: str) -> str:
    """Run the three_steps child until ``step``'s first attempt began, then SIGKILL it.

    Returns the effects line of that attempt's start.
    """
    child = spawn(str(db), "three_steps", str(effects), block=step, **extra_env)
    started = wait_for_line(effects, f"start {step} 1", child)
    sigkill(child)
    return started


def spawn_worker(
    db: Path | str,
    effects: Path,
    prefix: Sequence[str] = (),
    wait: bool = True,
    **extra_env: str,
) -> subprocess.Popen[str]:
    """``durable worker tests.child`` on ``db``, once it says it is running (at once
    without ``wait``); ``prefix`` runs it under another command (``unshare``)."""
    env = {"DURABLE_TEST_EFFECTS": str(effects), **extra_env}
    ready = "durable worker:" if wait else None
    return durable_process(
        "--db", str(db), "worker", "tests.child", ready=ready, prefix=prefix, **env
    )


def held_mid_step(db: Path | str, effects: Path) -> subprocess.Popen[str]:
    """A ``durable worker`` running run ``t`` of ``child.three_steps`` (started from the
    command line), held inside its ``second`` step's first attempt."""
    worker = spawn_worker(db, effects, BLOCK="second")
    started = cli(db, "start", "child.three_steps", "--module", "tests.child", "--run-id", "t")
    assert started.returncode == 0, started.stderr
    wait_for_line(effects, "start second 1")
    return worker


def durable_process(
    *args: str, ready: str | None, prefix: Sequence[str] = (), **extra_env: str
) -> subprocess.Popen[str]:
    """``python -m durable ARGS...`` running, once its first line starts with ``ready``
    (None: at once)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("BLOCK", "DURABLE_TOKEN"):
        env.pop(name, None)
    env.update(extra_env)
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "durable", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its group can be signalled, whatever runs it
    )
    SPAWNED.append(proc)  # type: ignore[arg-type]  # killed at teardown if the test fails
    if ready is not None:
        wait_ready(proc, ready)
    return proc


def wait_ready(proc: subprocess.Popen[str], ready: str = "durable worker:") -> None:
    """Wait until the process's first line starts with ``ready``."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(ready), line + (proc.stderr.read() if proc.stderr else "")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for_line(
    path: Path, prefix: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0
) -> str:
    """Poll ``path`` until a line starts with ``prefix``; fail if the child exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in lines(path):
            if line.startswith(prefix):
                return line
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(
                f"child exited {proc.returncode} before {prefix!r}:\n{err.decode()}"
            )
        time.sleep(0.01)
    raise AssertionError(f"no line starting {prefix!r} in {path} after {timeout}s: {lines(path)}")


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def finish(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # its traceback says where it hung
        _, err = proc.communicate()
        raise AssertionError(
            f"child {proc.pid} did not end in {timeout}s:\n{err.decode()}"
        ) from None
    assert proc.returncode == 0, err.decode()


def journal_value(db: Path | str, sql: str, params: tuple[object, ...] = ()) -> object:
    """One value read on its own connection; None until the schema exists."""
    try:
        rows = query(db, sql, params)
    except (sqlite3.OperationalError, asyncpg.PostgresError):
        return None
    return rows[0][0] if rows else None


def last_open(effects: Path) -> float:
    """When the most recent child process opened its runtime."""
    return float([line for line in lines(effects) if line.startswith("open")][-1].split()[1])


def wait_for_status(
    db: Path | str, status: str, run_id: str | None = None, timeout: float = 30.0
) -> None:
    """Poll the journal until the run (the only one, or ``run_id``) has ``status``."""
    sql = "SELECT status FROM runs" + ("" if run_id is None else " WHERE run_id = ?")
    params = () if run_id is None else (run_id,)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (isinstance(db, str) or db.exists()) and journal_value(db, sql, params) == status:
            return
        time.sleep(0.01)
    raise AssertionError(f"run {run_id or ''} never reached {status!r}")
