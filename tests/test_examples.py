"""The examples run as written, and the README's quickstart is the quickstart example."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str, folder: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python examples/NAME.py`` run in ``folder``, as a new user runs it."""
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_readme_quickstart_is_the_example_file() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "the README's Quickstart section has no python block"
    assert block.group(1) == (ROOT / "examples" / "quickstart.py").read_text()


def test_the_quickstart_runs_and_runs_again(tmp_path: Path) -> None:
    for _ in range(2):  # the second start finds the run done, by its run_id
        done = run_example("quickstart", tmp_path, 60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1].endswith("'approved': True}")
    assert (tmp_path / "app.db").exists()


def test_the_agent_team_survives_its_sigkill(tmp_path: Path) -> None:
    done = run_example("agent_team", tmp_path, 120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "== SIGKILL after" in done.stdout
    assert done.stdout.count("completed  [") == 3  # three children, each once
    assert "The agent's result: published: [arxiv]" in done.stdout


def test_the_support_agent_survives_its_sigkill(tmp_path: Path) -> None:
    done = run_example("support_agent", tmp_path, 180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "== SIGKILL: process" in done.stdout
    assert "model calls: 3, refunds: 1; completed calls run again: 0" in done.stdout
    assert done.stdout.count("RESULT Your refund of $19.99 is on its way.") >= 1
    assert "tokens and $0.0000 of a budget of 20000 tokens and $1.00" in done.stdout
