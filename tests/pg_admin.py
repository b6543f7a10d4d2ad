"""What the PostgreSQL tests do to the server itself, scoped so that nobody else on a
shared server notices: connections are killed only when they carry the exact name
given to the runtime under test, and only in the test's own database; a role is made
with a name of its own and dropped however the test ends. Nothing here changes a
setting of the server or of a database, and nothing restarts the server (a restart is
staged with the proxy in ``pg_outage.py``)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest

from durable.store.postgres.schema import split_schema
from durable.store.sql_files import quote_ident

PREFIX = "durable_test_"
"""How every name this module makes begins, so that none is another user's."""

_ADMIN = f"{PREFIX}admin"
"""The name of this module's own connections: never one of those it kills."""


def named(url: str) -> tuple[str, str]:
    """``url`` with an ``application_name`` no one else has, and that name: every
    connection of a runtime opened at that URL carries it, so that
    ``terminate_connections`` can find those and nobody else's."""
    name = f"{PREFIX}{secrets.token_hex(6)}"
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}application_name={name}", name


async def connect(url: str, application_name: str = _ADMIN) -> asyncpg.Connection:
    """A plain connection to the database of ``url`` (its ``schema`` parameter
    dropped), named ``application_name`` whatever the URL names."""
    plain, _ = split_schema(url)
    return await asyncpg.connect(plain, server_settings={"application_name": application_name})


async def backends_named(conn: asyncpg.Connection, application_name: str) -> set[int]:
    """The pids of the backends of ``conn``'s database named exactly ``application_name``."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity"
        " WHERE application_name = $1 AND datname = current_database()",
        application_name,
    )
    return {row["pid"] for row in rows}


async def terminate_connections(url: str, application_name: str) -> set[int]:
    """Terminate (``pg_terminate_backend``) every backend in the database of ``url``
    named exactly ``application_name``, a name made by ``named``; the pids signalled.
    A connection with any other name, or in another database, is left alone."""
    if not application_name.startswith(PREFIX) or application_name == _ADMIN:
        raise ValueError(
            f"refusing to kill the connections named {application_name!r}: others on the"
            " server may use that name; give the runtime one from pg_admin.named(url)"
        )
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid, pg_terminate_backend(pid) AS signalled FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()"
            " AND pid <> pg_backend_pid()",
            application_name,
        )
    finally:
        await conn.close()
    return {row["pid"] for row in rows if row["signalled"]}


@asynccontextmanager
async def throwaway_role(url: str) -> AsyncIterator[tuple[str, str]]:
    """A login role with a name and password of its own, with no rights but those
    everyone (``PUBLIC``) has, and ``url`` logging in as it: ``(role, url)``. The role
    is dropped when the block ends, however it ends. Skips the test where the URL's
    user may not create roles."""
    conn = await connect(url)
    try:
        allowed = await conn.fetchval(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        )
        if not allowed:
            pytest.skip("the user of DURABLE_TEST_POSTGRES may not create roles (CREATEROLE)")
        role, password = f"{PREFIX}{secrets.token_hex(6)}", secrets.token_hex(16)
        await conn.execute(f"CREATE ROLE {quote_ident(role)} LOGIN PASSWORD '{password}'")
        try:
            yield role, _as_user(url, role, password)
        finally:
            await conn.execute(f"DROP ROLE IF EXISTS {quote_ident(role)}")
    finally:
        await conn.close()


def _as_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host_and_port = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user)}:{password}@{host_and_port}"))
