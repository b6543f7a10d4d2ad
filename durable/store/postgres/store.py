"""The PostgreSQL store: many runtimes on many machines share one database.

``Runtime("postgresql://user@host/db")`` (extra ``durable-workflows[postgres]``). The
journal is the SQLite one in tables of the schema ``durable`` (or the URL's
``?schema=``): see ``schema.py`` and ``functions.py``. Writes go through one
connection with group commit (``writer.py``), reads through a small pool, and a third
connection LISTENs (``feed.py``): every transaction that others must hear of (a new run, a
message, a cancel, a run's end, a released lease) sends a NOTIFY in the same
transaction, so a woken reader finds what it was woken for. Free runs are
claimed with ``FOR UPDATE SKIP LOCKED``, so runtimes claiming together never
wait for each other nor take the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:
    import asyncpg
except ImportError:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "a postgresql:// journal needs asyncpg: pip install 'durable-workflows[postgres]'"
    ) from None

from durable._base.aio import Backoff, ready, within
from durable.errors import DurableError
from durable.journal.kinds import PUBLISHED
from durable.journal.records import (
    TERMINAL,
    Admitted,
    EventRecord,
    Expect,
    NewEvent,
    QueueLimits,
    RunRecord,
    RunUpdate,
    ScheduleRecord,
    StoreUnavailable,
    claim_of,
)
from durable.store.ports import RunFilter, WriteChain
from durable.store.postgres import jobs, leases
from durable.store.postgres.commit import is_transient
from durable.store.postgres.feed import ChangeFeed
from durable.store.postgres.functions import (
    APPEND_PARAMETERS,
    RUN_COLUMNS,
    append_args,
    append_outcome,
    start_args,
    start_outcome,
)
from durable.store.postgres.listing import _ACTIVE, runs_where
from durable.store.postgres.schema import describe, migrate, split_schema
from durable.store.postgres.writer import PgWriter

log = logging.getLogger("durable")

_CONNECT_TIMEOUT = 5.0

_EVENT_COLUMNS = "seq, run_id, position, kind, name, payload, created_at, superseded"


def _event(row: Any) -> EventRecord:
    return EventRecord(*row)


class PostgresStore:
    """A journal in one PostgreSQL database, shared by any number of runtimes."""

    pushes_changes = True

    def __init__(self, url: str, durability: str = "full", poll_interval: float = 0.25) -> None:
        if durability not in ("full", "normal"):
            raise ValueError(f"durability must be 'full' or 'normal', got {durability!r}")
        self.url, self.schema = split_schema(url)
        self._where = describe(self.url)
        # "normal": a commit returns before the server has flushed it. It survives the
        # client's crash; a crash of the server may lose the last ones (README).
        self._synchronous_commit = "on" if durability == "full" else "off"
        self._channel = f"durable_{self.schema}"
        self._me = uuid.uuid4().hex
        self._s = f'"{self.schema}"'
        # append's parameters, then finish_batch's: the batch's marker.
        placeholders = ",".join(f"${i}" for i in range(1, APPEND_PARAMETERS + 1))
        marker = ",".join(f"${APPEND_PARAMETERS + i}" for i in range(1, 4))
        self._append_sql = (
            f"SELECT a.refused, a.detail, a.first_seq FROM {self._s}.append({placeholders}) a,"
            f" {self._s}.finish_batch({marker})"
        )
        # The admitted runs come back from the call, read on the writer's connection
        # (the pool may be busy with many readers).
        self._admit_sql = self._call_sql("admit", 11)
        self._writer = PgWriter(self._connect, self._s, self._append_sql, self._me, self._channel)
        self._pool: asyncpg.Pool | None = None
        self._feed = ChangeFeed(self._connect, self._channel, self._me)
        self._closing = False
        del poll_interval  # PostgreSQL is heard through LISTEN, not polled

    @property
    def writer(self) -> PgWriter:
        return self._writer

    # -- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        conn = await self._connect()
        try:
            await migrate(conn, self.schema, self._where)
        finally:
            await conn.close()
        try:
            await self._writer.start()
            # No floor of idle connections: asyncpg restores a floor after a restart by
            # retrying in the background and logs each try with a traceback; reads open
            # what they need, and the pool keeps them.
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=0,
                max_size=4,
                timeout=_CONNECT_TIMEOUT,
                server_settings=self._settings(),
            )
            await self._feed.listen()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._closing = True
        await self._writer.stop()
        await self._feed.close()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await within(self._pool.close(), 5)
            self._pool = None

    def _settings(self) -> dict[str, str]:
        """What every connection sets. ``application_name`` is only a fallback, as
        libpq's ``fallback_application_name``: the URL's own wins, so operators can
        tell one service's runtimes from another's in ``pg_stat_activity``."""
        settings = {"search_path": self.schema, "synchronous_commit": self._synchronous_commit}
        if "application_name" not in parse_qs(urlsplit(self.url).query):
            settings["application_name"] = "durable"
        return settings

    async def _connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(
                self.url, timeout=_CONNECT_TIMEOUT, server_settings=self._settings()
            )
        except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as e:
            raise DurableError(
                f"PostgreSQL at {self._where} refused the login: {e}; check the user and"
                " password in the URL (postgresql://user:password@host:port/database)"
            ) from None
        except asyncpg.InvalidCatalogNameError as e:
            raise DurableError(
                f"PostgreSQL at {self._where}: {e}; create it (createdb) or name another"
                " database in the URL"
            ) from None
        except (TimeoutError, OSError, asyncpg.CannotConnectNowError) as e:
            raise StoreUnavailable(
                f"cannot reach PostgreSQL at {self._where} ({e or 'timed out'}); is the server"
                " running and is the host and port in the URL right?"
            ) from None

    async def wait_for_change(self, timeout: float) -> bool:
        return await self._feed.wait_for_change(timeout)

    # -- reads --------------------------------------------------------------

    def _call_sql(self, function: str, parameters: int) -> str:
        """``SELECT *`` from the schema's ``function`` with ``parameters`` placeholders."""
        placeholders = ",".join(f"${i}" for i in range(1, parameters + 1))
        return f"SELECT * FROM {self._s}.{function}({placeholders})"

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        """Rows of a read; a server that is away is waited for, as the writer does."""
        if self._pool is None:
            raise DurableError("the journal is closed; use the runtime inside `async with`")
        backoff = Backoff(self._writer.give_up_after)
        while True:
            try:
                return list(await self._pool.fetch(sql, *args))
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self._closing or not await backoff.wait():
                    raise StoreUnavailable(f"PostgreSQL did not answer: {exc}") from None

    def _runs_sql(self, where: str) -> str:
        s = self._s
        return (
            f"SELECT {RUN_COLUMNS} FROM {s}.runs"
            f" JOIN {s}.run_inputs ON run_inputs.run_id = runs.run_id"
            f" LEFT JOIN {s}.owners ON owners.owner = runs.owner WHERE {where}"
        )

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._fetch(self._runs_sql("runs.run_id = $1"), run_id)
        return leases.run_record(rows[0]) if rows else None

    async def list_runs(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int | None = 100,
        unfinished: bool = False,
        *,
        after: tuple[float, str] | None = None,
        since: float | None = None,
        until: float | None = None,
        parent: str | None = None,
        id_contains: str | None = None,
        id_prefix: str | None = None,
    ) -> list[RunRecord]:
        found = RunFilter(
            status, workflow, unfinished, after, since, until, parent, id_contains, id_prefix
        )
        where, params = runs_where(found)
        sql = self._runs_sql(where) + " ORDER BY created_at DESC, runs.run_id"
        if limit is not None:
            params.append(limit)
            sql += f" LIMIT ${len(params)}"
        return [leases.run_record(row) for row in await self._fetch(sql, *params)]

    async def prune(self, ended_before: float, limit: int) -> int:
        job = functools.partial(jobs.prune, s=self._s, ended_before=ended_before, limit=limit)
        return await self._writer.submit(job)  # type: ignore[no-any-return]

    async def events_after(self, run_id: str, seq: int) -> list[EventRecord]:
        rows = await self._fetch(
            f"SELECT {_EVENT_COLUMNS} FROM {self._s}.events WHERE run_id = $1 AND seq > $2"
            " ORDER BY seq",
            run_id,
            seq,
        )
        return [_event(row) for row in rows]

    async def load_events(self, run_ids: Sequence[str]) -> dict[str, list[EventRecord]]:
        result: dict[str, list[EventRecord]] = {run_id: [] for run_id in run_ids}
        rows = await self._fetch(
            f"SELECT {_EVENT_COLUMNS} FROM {self._s}.events WHERE run_id = ANY($1::text[])"
            " ORDER BY run_id, seq",
            list(run_ids),
        )
        for row in rows:
            result[row[1]].append(_event(row))
        return result

    async def spend_events(self, after: Mapping[str, int]) -> dict[str, list[EventRecord]]:
        result: dict[str, list[EventRecord]] = {run_id: [] for run_id in after}
        # The kinds spelled as the partial index events_spend has them, so that it is used.
        rows = await self._fetch(
            f"SELECT {_EVENT_COLUMNS} FROM {self._s}.events"
            " JOIN unnest($1::text[], $2::bigint[]) AS after (run_id, seq_read) USING (run_id)"
            " WHERE seq > seq_read AND kind IN ('budget.charged', 'budget.raised')"
            " ORDER BY run_id, seq",
            list(after),
            list(after.values()),
        )
        for row in rows:
            result[row[1]].append(_event(row))
        return result

    async def changes_since(self, seq: int) -> list[EventRecord]:
        rows = await self._fetch(
            f"SELECT {_EVENT_COLUMNS} FROM {self._s}.events"
            " WHERE position IS NULL AND seq > $1 ORDER BY seq",
            seq,
        )
        return [_event(row) for row in rows]

    async def last_seq(self) -> int:
        rows = await self._fetch(
            f"SELECT coalesce(max(seq), 0) FROM {self._s}.events WHERE position IS NULL"
        )
        return int(rows[0][0])

    async def owners(self) -> dict[str, float]:
        rows = await self._fetch(f"SELECT owner, lease_until FROM {self._s}.owners")
        return {row[0]: float(row[1]) for row in rows}

    # -- writes -------------------------------------------------------------

    async def create_run(
        self, run: RunRecord, chain: WriteChain | None = None, *, fresh_id: bool = False
    ) -> tuple[RunRecord, bool]:
        args = start_args(run, check_orphans=not fresh_id)
        notify = run.owner is None  # unowned: for whichever runtime claims it first
        if run.dedup_key is None:
            # A new id is never refused: the run's writes queued behind it in its chain
            # share its pipeline.
            guard = claim_of(run.owner, run.epoch) if fresh_id and run.owner else None
            finish = start_outcome(run.run_id)
            created = await self._writer.submit_write(args, finish, chain, notify, guard)
        else:
            job = functools.partial(
                jobs.create_deduplicated, s=self._s, append_sql=self._append_sql, run=run, args=args
            )
            created = await self._writer.submit(job, chain, notify=notify)
        if created:
            return run, True
        rows = await self._fetch(self._runs_sql("runs.run_id = $1"), run.run_id)
        if not rows:
            raise DurableError(f"run {run.run_id!r} was deleted as it was started again")
        return leases.run_record(rows[0]), False

    def append(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        update: RunUpdate | None = None,
        expect: Expect | None = None,
        claim: str | None = None,
        chain: WriteChain | None = None,
    ) -> asyncio.Future[list[int]]:
        args = append_args(run_id, events, update, expect, claim)
        future: asyncio.Future[list[int]] = self._writer.submit_write(
            args,
            append_outcome(run_id, expect, len(events)),
            chain,
            notify=_heard_elsewhere(events, update, claim),
            # Refused, an owner's write proves the run is another's or ended, for good.
            guard=claim if expect is None else None,
        )
        return future

    def append_nowait(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        update: RunUpdate | None,
        claim: str,
        chain: WriteChain,
    ) -> None:
        args = append_args(run_id, events, update, None, claim)
        finish = append_outcome(run_id, None, len(events))
        self._writer.submit_write_nowait(args, finish, chain, guard=claim)

    async def supersede(
        self, run_id: str, position: int, update: RunUpdate, events: Sequence[NewEvent] = ()
    ) -> int:
        job = functools.partial(
            jobs.supersede,
            s=self._s,
            append_sql=self._append_sql,
            run_id=run_id,
            position=position,
            args=append_args(run_id, events, update, None, None),
        )
        return await self._writer.submit(job, notify=True)  # type: ignore[no-any-return]

    async def send(self, message: NewEvent, expect: Expect, key: str | None = None) -> int | None:
        job = functools.partial(
            jobs.send,
            s=self._s,
            append_sql=self._append_sql,
            message=message,
            expect=expect,
            key=key,
        )
        return await self._writer.submit(job, notify=True)  # type: ignore[no-any-return]

    async def cancel(self, run_id: str, now: float, error: str | None = None) -> list[str]:
        job = functools.partial(
            jobs.cancel, s=self._s, append_sql=self._append_sql, run_id=run_id, now=now, error=error
        )
        return await self._writer.submit(job, notify=True)  # type: ignore[no-any-return]

    async def claim(
        self,
        owner: str,
        lease_until: float,
        now: float,
        *,
        limit: int,
        dead_owners: Sequence[str] = (),
        run_ids: Sequence[str] | None = None,
        workflows: Sequence[tuple[str, str]] | None = None,
        include_own: bool = True,
        skip: Sequence[str] = (),
    ) -> list[RunRecord]:
        if workflows is not None and not workflows:
            return []
        job = functools.partial(
            leases.claim,
            s=self._s,
            runs_sql=self._runs_sql,
            owner=owner,
            lease_until=lease_until,
            now=now,
            limit=limit,
            dead_owners=dead_owners,
            run_ids=run_ids,
            workflows=workflows,
            include_own=include_own,
            skip=skip,
        )
        return await self._writer.submit(job)  # type: ignore[no-any-return]

    def admit(
        self,
        owner: str,
        lease_until: float,
        now: float,
        queues: Sequence[QueueLimits],
        *,
        limit: int,
        workflows: Sequence[tuple[str, str]] | None = None,
    ) -> Awaitable[Admitted]:
        if not queues or (workflows is not None and not workflows):
            return ready(Admitted([]))
        args = leases.admit_args(self._s, owner, now, queues, limit, workflows)
        job = functools.partial(leases.admit, sql=self._admit_sql, args=args)
        return self._writer.submit(job)

    async def queue_names(self) -> list[str]:
        rows = await self._fetch(
            f"SELECT DISTINCT queue FROM {self._s}.runs WHERE queue IS NOT NULL ORDER BY queue"
        )
        return [row[0] for row in rows]

    async def queue_counts(self, queue: str) -> tuple[int, int]:
        rows = await self._fetch(
            f"SELECT count(*) FILTER (WHERE status = 'queued'),"
            f" count(*) FILTER (WHERE status <> 'queued' AND {_ACTIVE})"
            f" FROM {self._s}.runs WHERE queue = $1",
            queue,
        )
        return int(rows[0][0]), int(rows[0][1])

    async def run_tree(self, run_id: str) -> dict[str, str | None]:
        rows = await self._fetch(
            f"WITH RECURSIVE tree (run_id, parent_run_id) AS ("
            f" SELECT run_id, NULL::text FROM {self._s}.runs WHERE run_id = $1"
            f" UNION SELECT r.run_id, r.parent_run_id FROM {self._s}.runs r"
            " JOIN tree ON r.parent_run_id = tree.run_id) SELECT run_id, parent_run_id FROM tree",
            run_id,
        )
        return {row[0]: row[1] for row in rows}

    async def run_counts(self) -> dict[tuple[str, str], int]:
        rows = await self._fetch(
            f"SELECT workflow, status, count(*) FROM {self._s}.runs GROUP BY workflow, status"
        )
        return {(row[0], row[1]): int(row[2]) for row in rows}

    async def see_schedule(self, workflow: str, cron: str, tz: str, now: float) -> ScheduleRecord:
        job = functools.partial(
            jobs.see_schedule, s=self._s, workflow=workflow, cron=cron, tz=tz, now=now
        )
        return await self._writer.submit(job)  # type: ignore[no-any-return]

    async def note_tick(self, workflow: str, tick: float) -> None:
        await self._writer.submit(
            functools.partial(jobs.note_tick, s=self._s, workflow=workflow, tick=tick)
        )

    async def schedules(self) -> list[ScheduleRecord]:
        rows = await self._fetch(
            f"SELECT workflow, cron, tz, first_seen, last_tick FROM {self._s}.schedules"
            " ORDER BY workflow"
        )
        return [ScheduleRecord(*row) for row in rows]

    async def renew(self, owner: str, lease_until: float, now: float) -> set[str] | None:
        job = functools.partial(
            leases.renew, s=self._s, owner=owner, lease_until=lease_until, now=now
        )
        return await self._writer.submit(job)  # type: ignore[no-any-return]

    async def release(self, owner: str, run_ids: Sequence[str] = ()) -> None:
        job = functools.partial(leases.release, s=self._s, owner=owner, run_ids=run_ids)
        await self._writer.submit(job, notify=True)


def _heard_elsewhere(
    events: Sequence[NewEvent], update: RunUpdate | None, claim: str | None
) -> bool:
    """Whether other runtimes must hear of this write: anything but a run's owner
    journaling its own progress, except its end, its questions to a person and the
    state it publishes (someone may await those: ``result()``, ``wait_for_question``,
    ``wait_state``)."""
    if claim is None:
        return True
    if update is not None and (
        update.status in TERMINAL or update.status == "waiting" or update.release
    ):
        return True
    return any(event.kind.startswith(PUBLISHED) for event in events)
