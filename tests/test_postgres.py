"""What only PostgreSQL has: a server to miss, other schema versions, connections killed
under a live runtime, and worker processes on many machines (here: many processes)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import durable
from durable.store.postgres.schema import SCHEMA_VERSION, split_schema

from . import child as child_program
from . import pg_admin
from .conftest import NO_POSTGRES, POSTGRES
from .helpers import until
from .journal_sql import execute, query
from .pg_outage import OutageProxy
from .processes import finish, lines, spawn_worker

pytestmark = pytest.mark.skipif(POSTGRES is None, reason=NO_POSTGRES)


@pytest.fixture
def backend() -> str:
    """Every test here is PostgreSQL's: ``db`` is a URL with a schema of its own."""
    return "postgres"


@durable.step
async def tick(i: int) -> int:
    await asyncio.sleep(0.01)
    return i


LOSSY = durable.Queue("postgres.lossy", concurrency=1)


@durable.workflow(name="postgres.queued_tick", queue=LOSSY)
async def queued_tick(ctx: durable.WorkflowContext, i: int) -> int:
    return await ctx.step("tick", tick, i)


@durable.workflow(name="pg.counter")
async def counter(ctx: durable.WorkflowContext, steps: int) -> int:
    return sum([await tick(i) for i in range(steps)])


async def test_an_unreachable_server_is_named_with_the_fix_within_seconds() -> None:
    started = time.monotonic()
    with pytest.raises(durable.DurableError, match=r"127\.0\.0\.1:1/test.*is the server running"):
        async with durable.Runtime("postgresql://root@127.0.0.1:1/test"):
            pass
    assert time.monotonic() - started < 10


async def test_a_missing_database_is_named(db: str) -> None:
    plain, _ = split_schema(db)
    missing = plain.rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(durable.DurableError, match=r"no_such_database_here.*createdb"):
        async with durable.Runtime(missing):
            pass


async def test_functions_dropped_or_changed_by_hand_are_reinstalled_on_open(db: str) -> None:
    """The functions are no migration's: whatever a journal holds (an earlier version's,
    one dropped, one altered by hand), an open installs this version's."""
    async with durable.Runtime(db):
        pass
    execute(db, "DROP FUNCTION admit")
    execute(db, "ALTER FUNCTION append RESET enable_seqscan")
    async with durable.Runtime(db, durability="normal") as rt:
        handles = [await rt.start(queued_tick, i) for i in range(4)]
        assert [await h.result(timeout=20) for h in handles] == [0, 1, 2, 3]
    assert query(db, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    settings = query(
        db,
        "SELECT proconfig FROM pg_proc"
        " WHERE proname = 'append' AND pronamespace = current_schema()::regnamespace",
    )
    assert settings == [(["enable_seqscan=off"],)]
    assert query(db, "SELECT to_regproc('admit') IS NOT NULL") == [(True,)]


async def test_a_journal_from_a_newer_durable_is_refused_untouched(db: str) -> None:
    async with durable.Runtime(db):
        pass
    execute(db, "UPDATE schema_version SET version = 99")
    with pytest.raises(durable.DurableError, match="schema version 99, newer than"):
        async with durable.Runtime(db):
            pass
    assert query(db, "SELECT version FROM schema_version") == [(99,)]


async def test_a_role_that_may_not_create_the_schema_gets_a_clear_error(db: str) -> None:
    """With a role of the test's own, dropped afterwards. Nothing is revoked from anyone:
    where everyone may create schemas in the database, the test is skipped."""
    async with pg_admin.throwaway_role(db) as (role, url):
        admin = await pg_admin.connect(db)
        try:
            may_create = await admin.fetchval(
                "SELECT has_database_privilege($1, current_database(), 'CREATE')", role
            )
        finally:
            await admin.close()
        if may_create:
            pytest.skip("PUBLIC may create schemas in this database; the test revokes nothing")
        with pytest.raises(durable.DurableError, match="the right to create the schema"):
            async with durable.Runtime(url):
                pass


async def test_runs_go_on_when_every_connection_of_the_runtime_is_killed(db: str) -> None:
    """pg_terminate_backend on the writer, the readers and the listener, mid-run: the
    runtime reconnects, the run finishes, and no step's end is journaled twice."""
    url, name = pg_admin.named(db)
    async with durable.Runtime(url, durability="normal") as rt:
        handle = await rt.start(counter, 40, run_id="c")

        async def some_steps_done() -> bool:
            events = await rt.history("c")
            return sum(1 for e in events if e["kind"] == "step.completed") >= 5

        await until(some_steps_done)
        assert len(await pg_admin.terminate_connections(url, name)) >= 3
        assert await handle.result(timeout=30) == sum(range(40))
        completed = Counter(
            e["position"] for e in await rt.history("c") if e["kind"] == "step.completed"
        )
    assert sorted(completed) == list(range(40)) and set(completed.values()) == {1}


async def test_killing_the_runtimes_connections_spares_everyone_elses(db: str) -> None:
    """The suite kills connections on a server others may share: only those of the
    runtime under test, by its exact name, in its database. Connections named as
    runtimes are by default (``durable``), named almost alike, or named alike in
    another database live on."""
    url, name = pg_admin.named(db)
    other_database = await _another_database(db)
    admin = await pg_admin.connect(db)
    bystanders: list[asyncpg.Connection] = []
    try:
        for database, bystanders_name in [
            (db, "durable"),
            (db, f"{name}_other"),
            (other_database, name),
        ]:
            bystanders.append(await pg_admin.connect(database, bystanders_name))
        async with durable.Runtime(url) as rt:
            await rt.list_runs()  # a reader is open, beside the writer and the listener
            targets = await pg_admin.backends_named(admin, name)
            assert len(targets) >= 3
            killed = await pg_admin.terminate_connections(url, name)
            assert targets <= killed

            async def all_gone() -> bool:
                running = await admin.fetch("SELECT pid FROM pg_stat_activity")
                return not killed & {row["pid"] for row in running}

            await until(all_gone)
        for bystander in bystanders:  # a terminated one would raise here
            assert await bystander.fetchval("SELECT pg_backend_pid()") not in killed
    finally:
        for conn in [admin, *bystanders]:
            await conn.close()


async def _another_database(url: str) -> str:
    """``url`` naming another database of the server (``postgres``, or ``template1``
    from ``postgres``); the test is skipped where the URL's user may not connect to it."""
    plain, _ = split_schema(url)
    parts = urlsplit(plain)
    database = "template1" if parts.path.strip("/") == "postgres" else "postgres"
    other = urlunsplit(parts._replace(path=f"/{database}"))
    try:
        conn = await pg_admin.connect(other)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"cannot connect to the database {database!r} beside the test's: {exc}")
    await conn.close()
    return other


def test_three_worker_processes_share_100_runs_and_none_runs_twice(db: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    child_program.EFFECTS = str(effects)

    async def start_runs() -> None:
        async with durable.Runtime(db, recover=False) as client:
            for i in range(100):
                await client.start(child_program.torture_run, 3, run_id=f"shared-{i}")

    workers = [spawn_worker(db, effects) for _ in range(3)]
    try:
        asyncio.run(start_runs())

        async def all_done() -> bool:
            async with durable.Runtime(db, recover=False) as client:
                done = await client.list_runs(status="completed", limit=1000)
            return len(done) == 100

        asyncio.run(until(all_done, timeout=60))
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            finish(worker)  # type: ignore[arg-type]
    begins = [line.split() for line in lines(effects) if line.startswith("begin")]
    per_step = Counter((fields[1], fields[2]) for fields in begins)
    assert len(per_step) == 300 and set(per_step.values()) == {1}  # each step ran once
    assert len({fields[4] for fields in begins}) >= 2  # the work was spread


EXECUTED: Counter[int] = Counter()


@durable.step
async def counted_tick(i: int) -> int:
    EXECUTED[i] += 1
    await asyncio.sleep(0.01)
    return i


@durable.workflow(name="pg.counted")
async def counted(ctx: durable.WorkflowContext, steps: int) -> int:
    total = sum([await counted_tick(i) for i in range(steps)])
    answer = await ctx.wait_for_user("go on?", input_type="text")
    return total + len(answer)


async def test_a_server_that_goes_away_and_comes_back_is_survived(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every connection reset and the server refusing new ones for 2 s, as in a restart,
    mid-run: the run finishes, no step runs twice, and an answer sent afterwards by
    another runtime is heard by the reconnected runtime. What the outage logs are
    lines that say it is retried, none with a traceback."""
    caplog.set_level(logging.WARNING)
    EXECUTED.clear()
    async with OutageProxy(db) as proxy, durable.Runtime(proxy.url) as rt:
        handle = await rt.start(counted, 30, run_id="c")

        async def some_steps_done() -> bool:
            return len(EXECUTED) >= 8

        await until(some_steps_done)
        connections_before = proxy.connections
        await proxy.outage(2.0)
        await until(lambda: _waiting(rt, "c"), timeout=30)
        assert proxy.connections > connections_before  # it did reconnect
        async with durable.Runtime(db, recover=False) as other:
            await other.respond("c", "yes")
        assert await handle.result(timeout=10) == sum(range(30)) + 3
    assert sorted(EXECUTED) == list(range(30)) and set(EXECUTED.values()) == {1}
    completed = [e for e in query(db, "SELECT kind FROM events") if e[0] == "step.completed"]
    assert len(completed) == 30
    logged = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert any("retry" in record.getMessage() for record in logged)
    assert [record.getMessage() for record in logged if record.exc_info] == []


async def _waiting(rt: durable.Runtime, run_id: str) -> bool:
    return bool(await rt.pending_waits(run_id))
