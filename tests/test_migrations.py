"""Upgrades on both backends: migration files are frozen, a journal migrated from any
earlier version is the same as a new one (functions included), functions that differ
from their files are reinstalled on open, and journals written by earlier commits of
durable open and their parked runs finish."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import asyncpg
import pytest

import durable
from durable.store import sql_files as _sql_files
from durable.store.postgres.functions import MESSAGE_LOCK, QUEUE_LOCK, RUN_COLUMNS
from durable.store.postgres.schema import split_schema
from durable.store.sql_files import quote_ident

from . import schemas
from .journal_sql import execute, query

FIXTURES = Path(__file__).parent / "fixtures"

RELEASED = {
    "sqlite/0001_runs_and_events.sql": "f4db6dda503b9c2d",
    "sqlite/0002_runs_active.sql": "f0038c195ff43690",
    "sqlite/0003_drop_runs_by_status.sql": "4dab4576820061cf",
    "sqlite/0004_owners.sql": "ebbc6cc7be3b84f9",
    "sqlite/0005_events_by_run.sql": "c249274237356103",
    "sqlite/0006_runs_active_without_in.sql": "e50b72dfebe10f06",
    "sqlite/0007_run_inputs.sql": "37e2c60c4b952855",
    "sqlite/0008_runs_created_and_marks.sql": "1ab9464f61026b77",
    "sqlite/0009_composition.sql": "16c2b2db6fc15333",
    "sqlite/0010_queues_and_schedules.sql": "a0814540c0f7d369",
    "sqlite/0011_trace.sql": "7edcdc0ba49765e3",
    "sqlite/0012_run_epoch.sql": "e667814150f4cc07",
    "sqlite/0013_owner_executes.sql": "7658c3718d07fe58",
    "sqlite/0014_spend_events.sql": "ebbecbcb31625d20",
    "postgres/0001_runs_and_events.sql": "46d9ae71d0d53b83",
    "postgres/0002_writers_and_run_inputs.sql": "401f8f08428e7bfd",
    "postgres/0003_journal_marks.sql": "1482cc0657f67b74",
    "postgres/0004_composition.sql": "afb26ae58af6bf42",
    "postgres/0005_queues_and_schedules.sql": "119169a88201cecb",
    "postgres/0006_trace.sql": "cdba703104782599",
    "postgres/0007_functions_only.sql": "7de3e5b65af88a6f",
    "postgres/0008_run_epoch.sql": "acfff87e1184f852",
    "postgres/0009_owner_executes.sql": "181f7c7c0f5b73b8",
    "postgres/0010_spend_events.sql": "2a0574193f9c6901",
}
"""Every released migration file and the start of its text's sha256. A new file gets a
line here; a line never changes: a file that journals have run cannot change under them."""


def test_released_migration_files_are_frozen() -> None:
    found = {
        f"{backend}/{file.name}": hashlib.sha256(file.text.encode()).hexdigest()[:16]
        for backend in ("sqlite", "postgres")
        for file in _sql_files.migrations(backend)
    }
    changed = sorted(key for key in RELEASED if found.get(key) != RELEASED[key])
    assert changed == [], "a released migration was edited or removed: add a new file instead"
    assert sorted(found) == sorted(RELEASED), "a new migration file: pin its hash in RELEASED"


def test_the_function_files_agree_with_the_code_that_calls_them() -> None:
    """The functions spell out the locks and the run columns the Python side shares."""
    texts = {file.name: " ".join(file.text.split()) for file in _sql_files.functions()}
    assert f"pg_advisory_xact_lock({MESSAGE_LOCK})" in texts["append.sql"]
    assert f"pg_advisory_xact_lock({QUEUE_LOCK}," in texts["admit.sql"]
    assert " ".join(RUN_COLUMNS.split()) in texts["admit.sql"]
    for file in _sql_files.functions():
        assert f"FUNCTION {_sql_files.SCHEMA_PLACEHOLDER}.{file.name[:-4]}(" in file.text


def test_the_schema_placeholder_is_quoted() -> None:
    assert _sql_files.for_schema(':"schema".runs', 'a"b') == '"a""b".runs'


def latest(backend: str) -> int:
    return _sql_files.migrations(backend)[-1].number


async def describe(journal: Path | str) -> schemas.Schema:
    if isinstance(journal, Path):
        return schemas.sqlite_schema(journal)
    return await schemas.postgres_schema(journal)


async def build_at(journal: Path | str, version: int) -> None:
    if isinstance(journal, Path):
        schemas.sqlite_at(journal, version)
    else:
        await schemas.postgres_at(journal, version)


def beside(db: Path | str, name: str) -> Path | str:
    """Another journal next to the test's: a file in its folder, or a schema."""
    if isinstance(db, Path):
        return db.with_name(f"{name}.db")
    plain, schema = split_schema(db)
    separator = "&" if "?" in plain else "?"
    return f"{plain}{separator}schema={schema}_{name}"


async def new_journal(db: Path | str) -> schemas.Schema:
    async with durable.Runtime(db):
        pass
    return await describe(db)


async def test_a_journal_migrated_from_every_earlier_version_equals_a_new_one(
    db: Path | str, backend: str
) -> None:
    fresh = await new_journal(db)
    for version in range(1, latest(backend)):
        old = beside(db, f"v{version}")
        try:
            await build_at(old, version)
            async with durable.Runtime(old):
                pass
            assert schemas.differences(await describe(old), fresh) == [], f"from {version}"
        finally:
            if isinstance(old, str):
                await schemas.drop_schema(old)


async def test_the_comparison_sees_a_missing_column_index_or_function(
    db: Path | str, backend: str
) -> None:
    fresh = await new_journal(db)
    execute(db, "ALTER TABLE runs DROP COLUMN trace")
    execute(db, "DROP INDEX runs_created")
    found = "\n".join(schemas.differences(await describe(db), fresh))
    assert "'trace'" in found
    assert "runs_created" in found
    if backend == "postgres":
        execute(db, "ALTER FUNCTION finish_batch(text, bigint, text) SET work_mem = '1MB'")
        found = "\n".join(schemas.differences(await describe(db), fresh))
        assert "work_mem" in found


@pytest.fixture
def pg_db(db: Path | str, backend: str) -> str:
    if backend != "postgres":
        pytest.skip("functions are PostgreSQL's")
    assert isinstance(db, str)
    return db


_OTHER_FINISH_BATCH = """
CREATE OR REPLACE FUNCTION finish_batch(p_writer text, p_batch bigint, p_channel text)
RETURNS void LANGUAGE plpgsql AS $fn$ BEGIN RETURN; END $fn$"""


async def test_functions_that_differ_from_their_files_are_reinstalled_on_open(
    pg_db: str,
) -> None:
    fresh = await new_journal(pg_db)
    execute(pg_db, _OTHER_FINISH_BATCH)
    execute(pg_db, "DROP FUNCTION admit")
    execute(pg_db, "CREATE FUNCTION leftover() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    assert schemas.differences(await describe(pg_db), fresh) != []
    async with durable.Runtime(pg_db) as rt:
        handle = await rt.start(sleeper, "cy")  # finish_batch's work: the writer's batches
        assert await handle.result(timeout=20) == "CY woke"
    assert schemas.differences(await describe(pg_db), fresh) == []


async def test_new_function_files_are_installed_into_a_journal_that_is_current(
    pg_db: str,
) -> None:
    """A version whose function files changed (no migration) installs them on open: a
    journal whose functions an earlier version's files installed gets this version's."""
    await new_journal(pg_db)
    current = query(pg_db, "SELECT files FROM installed_functions")
    execute(pg_db, "UPDATE installed_functions SET files = 'an earlier version'")
    async with durable.Runtime(pg_db):
        pass
    assert query(pg_db, "SELECT files FROM installed_functions") == current


# -- journals written by earlier commits (tests/fixtures/make_old_journals.py) ------


@durable.step(name="old.shout")
async def shout(text: str) -> str:
    return text.upper()


@durable.workflow(name="old.sleeper")
async def sleeper(ctx: durable.WorkflowContext, name: str) -> str:
    loud = await shout(name)
    await ctx.sleep(3)
    return f"{loud} woke"


@durable.workflow(name="old.asker")
async def asker(ctx: durable.WorkflowContext, name: str) -> str:
    loud = await shout(name)
    answer = await ctx.wait_for_user("approve?")
    return f"{loud} {answer}"


async def load_old_journal(db: Path | str) -> None:
    """The backend's fixture: a SQLite file of schema 9, a PostgreSQL dump of schema 6."""
    if isinstance(db, Path):
        shutil.copy(FIXTURES / "journal_old_sqlite_v9.db", db)
        return
    plain, schema = split_schema(db)
    dump = (FIXTURES / "journal_old_postgres_v6.sql").read_text()
    conn = await asyncpg.connect(plain)  # the dump empties search_path: a connection of its own
    try:
        await conn.execute(dump.replace("__SCHEMA__", quote_ident(schema)))
    finally:
        await conn.close()


async def test_a_journal_of_an_earlier_commit_opens_and_its_parked_runs_finish(
    db: Path | str, backend: str
) -> None:
    await load_old_journal(db)
    async with durable.Runtime(db) as rt:
        await rt.respond("old-asker", "yes")
        assert await rt.handle("old-asker").result(timeout=20) == "BOB yes"
        assert await rt.handle("old-sleeper").result(timeout=20) == "ADA woke"
        for run_id in ("old-asker", "old-sleeper"):  # replayed, not run again
            kinds = [event["kind"] for event in await rt.history(run_id)]
            assert kinds.count("step.completed") == 1
    fresh = beside(db, "fresh")
    try:
        assert schemas.differences(await describe(db), await new_journal(fresh)) == []
    finally:
        if isinstance(fresh, str):
            await schemas.drop_schema(fresh)
