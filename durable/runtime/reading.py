"""Reading runs from the journal: one run's row and history, lists of runs, watching one
for news, pruning the ended ones. Nothing here needs the run to execute in this process."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator
from typing import Any, Literal, NamedTuple

from durable._base.clock import Clock
from durable._base.ids import check_name
from durable._base.numbers import count, seconds, timestamp
from durable.errors import RunNotFound
from durable.journal.info import RunInfo, RunStatus, event_dict, history_document
from durable.journal.records import EventRecord, RunRecord
from durable.runtime.changes import Changes
from durable.runtime.lifecycle import Lifecycle
from durable.runtime.watch import News, watch
from durable.store.ports import Store


class Reading:
    """The runtime's part that reads runs (and prunes them)."""

    def __init__(self, store: Store, clock: Clock, lifecycle: Lifecycle, changes: Changes) -> None:
        self.store = store
        self.clock = clock
        self.lifecycle = lifecycle
        self.changes = changes

    def watch(
        self,
        run_id: str,
        events: Literal["none", "new", "all"],
        *,
        caller: bool = True,
        look_every: float | None = None,
    ) -> AsyncGenerator[News, None]:
        """``watch`` the run (see ``durable.runtime.watch``). A ``caller`` is someone a
        virtual clock skips time for while it waits; a run waiting on another is not."""
        self.lifecycle.check_open()
        check_name("run_id", run_id)
        clock = self.clock if caller else None
        return watch(self.store, self.changes, clock, run_id, events, look_every)

    async def record(self, run_id: str) -> RunRecord:
        """The run's row; ``RunNotFound`` if there is none."""
        self.lifecycle.check_open()
        check_name("run_id", run_id)
        record = await self.store.get_run(run_id)
        if record is None:
            raise RunNotFound(run_id)
        return record

    async def events(self, run_id: str) -> list[EventRecord]:
        return (await self.store.load_events([run_id]))[run_id]

    async def unfinished(self) -> list[RunRecord]:
        return await self.store.list_runs(limit=None, unfinished=True)

    async def history(self, run_id: str) -> list[dict[str, Any]]:
        await self.record(run_id)
        return [event_dict(event) for event in await self.events(run_id)]

    async def export(self, run_id: str) -> dict[str, Any]:
        record = await self.record(run_id)
        return history_document(record, await self.events(run_id))

    async def list_runs(
        self,
        status: RunStatus | str | None,
        workflow: str | None,
        limit: int,
        after: str | None,
        search: RunSearch,
    ) -> list[RunInfo]:
        self.lifecycle.check_open()
        status_text = None if status is None else _status(status)
        names = (("workflow", workflow), ("after", after), ("parent", search.parent))
        for what, name in names:
            if name is not None:
                check_name(f"list_runs({what}=...)", name)
        for what, text in (("id_contains", search.id_contains), ("id_prefix", search.id_prefix)):
            if text is not None and (not isinstance(text, str) or not text or "\x00" in text):
                raise ValueError(
                    f"list_runs({what}=...) takes the text to look for in run ids, not empty"
                    f" and without NUL; got {text!r}"
                )
        since, until = search.since, search.until
        cursor = None
        if after is not None:
            record = await self.store.get_run(after)
            if record is None:
                raise RunNotFound(after)
            cursor = (record.created_at, record.run_id)
        count("limit", limit)
        records = await self.store.list_runs(
            status_text,
            workflow,
            limit=limit,
            after=cursor,
            since=None if since is None else timestamp("since", since),
            until=None if until is None else timestamp("until", until),
            parent=search.parent,
            id_contains=search.id_contains,
            id_prefix=search.id_prefix,
        )
        return [RunInfo.from_record(record) for record in records]

    async def prune(self, older_than: float | dt.timedelta, batch: int) -> int:
        self.lifecycle.check_open()
        age = older_than.total_seconds() if isinstance(older_than, dt.timedelta) else older_than
        cutoff = self.clock.now() - seconds("older_than", age, zero_ok=True)
        count("batch", batch)
        pruned = 0
        while True:
            deleted = await self.store.prune(cutoff, batch)
            pruned += deleted
            if deleted < batch:
                return pruned


class RunSearch(NamedTuple):
    """What ``rt.list_runs`` narrows the runs by, besides status and workflow."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    parent: str | None = None
    id_contains: str | None = None
    id_prefix: str | None = None


def _status(status: RunStatus | str) -> str:
    try:
        return RunStatus(status).value
    except ValueError:
        valid = ", ".join(member.value for member in RunStatus)
        raise ValueError(f"unknown run status {status!r}; the statuses are: {valid}") from None
