"""The README's test command without a PostgreSQL server to test on: the summary says
how many tests of the PostgreSQL half were skipped and how to run them, instead of
counting them silently among the other skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent

ON_POSTGRES_ONLY = "tests/test_postgres.py::test_a_missing_database_is_named"
ON_BOTH = "tests/test_steps.py::test_completed_steps_are_not_run_again_after_a_restart"


def _pytest_without_postgres(*selected: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DURABLE_TEST_POSTGRES", "CI")}
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *selected],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished.stdout


def test_the_summary_counts_the_skipped_postgresql_tests_and_says_how_to_run_them() -> None:
    summary = _pytest_without_postgres(ON_POSTGRES_ONLY, ON_BOTH)
    assert "PostgreSQL not tested" in summary
    assert "2 tests on PostgreSQL were skipped: DURABLE_TEST_POSTGRES is not set" in summary
    assert "DURABLE_TEST_POSTGRES=postgresql://" in summary  # how to run them
    assert "1 passed, 2 skipped" in summary


def test_the_summary_is_quiet_when_nothing_on_postgresql_was_selected() -> None:
    summary = _pytest_without_postgres(ON_BOTH + "[sqlite]")
    assert "PostgreSQL" not in summary and "1 passed" in summary
