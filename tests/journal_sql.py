"""Raw SQL on a test's journal, whichever the backend: to read what was stored, or to
break it on purpose. ``?`` placeholders work on both (PostgreSQL gets ``$1``...)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

from durable.store import is_url


def query(db: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (executed and committed: it may write)."""
    if not is_url(str(db)):
        with contextlib.closing(sqlite3.connect(db)) as conn:
            rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
            conn.commit()
            return rows
    rows = _in_thread(_pg_query(str(db), sql, params))
    return list(rows)


def execute(db: Path | str, sql: str, params: tuple[Any, ...] = ()) -> None:
    query(db, sql, params)


async def _pg_query(url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    import asyncpg

    from durable.store.postgres.schema import split_schema

    plain, schema = split_schema(url)
    numbered = iter(range(1, 1000))
    sql = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)
    conn = await asyncpg.connect(plain, server_settings={"search_path": schema})
    try:
        return [tuple(row) for row in await conn.fetch(sql, *params)]
    finally:
        await conn.close()


def _in_thread(coro: Any) -> Any:
    """Runs ``coro`` on a loop of its own, so tests inside a running loop can call it."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]
