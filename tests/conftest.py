from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from .processes import kill_leftovers

POSTGRES = os.environ.get("DURABLE_TEST_POSTGRES")
"""A PostgreSQL URL for the tests (each test gets a schema of its own). CI always sets it."""

NO_POSTGRES = "DURABLE_TEST_POSTGRES is not set"
"""The skip reason of every PostgreSQL test without that URL, counted in the summary."""

TEST_SCHEMA_PREFIX = "t_"
"""How the name of every schema the tests make (and drop) begins."""

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and not POSTGRES:
        raise pytest.UsageError("CI must run the PostgreSQL tests: set DURABLE_TEST_POSTGRES")
    if POSTGRES and "schema" in parse_qs(urlsplit(POSTGRES).query):
        raise pytest.UsageError(
            "DURABLE_TEST_POSTGRES must not name a schema: each test makes one of its own"
            " and drops it; remove ?schema= from the URL"
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say that the PostgreSQL half was skipped, and how to run it, rather than only
    counting it among the skips."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if NO_POSTGRES in str(getattr(report, "longrepr", ""))
    ]
    if skipped:
        terminalreporter.write_sep("-", "PostgreSQL not tested", yellow=True)
        terminalreporter.write_line(
            f"{_tests_on_postgres(len(skipped))} skipped: {NO_POSTGRES}. To run them"
            " too, point it at a database the tests may create schemas in, e.g."
            " DURABLE_TEST_POSTGRES=postgresql://user@127.0.0.1/test python -m pytest"
        )


def _tests_on_postgres(count: int) -> str:
    return f"{count} test on PostgreSQL was" if count == 1 else f"{count} tests on PostgreSQL were"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not POSTGRES:
        pytest.skip(NO_POSTGRES)
    return str(request.param)


@pytest.fixture
def db(backend: str, tmp_path: Path) -> Iterator[Path | str]:
    """The journal of a test, on each backend: a file, or a schema of its own."""
    if backend == "sqlite":
        yield tmp_path / "journal.db"
        return
    assert POSTGRES is not None
    schema = f"{TEST_SCHEMA_PREFIX}{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in POSTGRES else "?"
    yield f"{POSTGRES}{separator}schema={schema}"
    asyncio.run(_drop_schema(schema))


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    """A journal file, for tests of what only SQLite has (its file, its writers)."""
    return tmp_path / "journal.db"


async def _drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    yield
    kill_leftovers()
