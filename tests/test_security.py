"""Security: no pickle, eval or exec; SQL takes values only as parameters; private files."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "durable"
SOURCES = sorted(PACKAGE.rglob("*.py"))

# What SQL f-strings may interpolate: fixed column lists and clauses, and placeholder
# lists built from "?" -- never a value. A new entry here needs a reviewer's eye.
ALLOWED_IN_SQL = {
    "_RUN_COLUMNS",
    "_EVENT_COLUMNS",
    "_ACTIVE",
    "target",  # a schema version, an int (PRAGMA takes no parameters)
    "WAL_AUTOCHECKPOINT",
    "self._synchronous",
    "', '.join((repr(status) for status in sorted(TERMINAL)))",
    "', '.join(sets)",
    "','.join('?' * len(run_ids))",
    "marks",
    "pairs",
    "where",
    # PostgreSQL: the schema, an identifier checked to be letters, digits and _ and quoted.
    "s",
    "self._s",
    "schema",
    "marker",  # $n placeholders of the batch's marker
    "RUN_COLUMNS",
    "function",
    "placeholders",
    "free",
    # Fixed pieces seen once the scan also read f-strings that begin with {...}: column
    # lists and clauses of the stores, and $n placeholder numbers.
    "_RUN_READ",
    "_RUN_SELECT",
    "_RUN_FROM",
    "last_seq",
    "' AND '.join(clauses)",
    "len(params)",
    "len(params) - 1",
    "len(params) + 1",
    "common",
    "order",
    "of_ours",
    "','.join('?' * len(live))",
    "CLAIM",
}
_ERRORS = ("Error", "Exception", "Unavailable", "Lost", "Journal", "error")
"""Calls whose f-strings are messages for people (an error naming a table), not SQL."""
SQL_ANYWHERE = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|PRAGMA|CREATE|BEGIN|COMMIT|WHERE|FROM|AND|OR"
    r"|IN|VALUES|SET|ORDER BY|LIMIT|JOIN)\b"
)
"""SQL anywhere in an f-string, also after a leading interpolation ({columns} FROM ...)."""
SQL_START = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE|BEGIN|COMMIT| WHERE| AND)\b"
)


def test_no_pickle_eval_or_exec_in_the_package() -> None:
    forbidden = re.compile(r"\b(pickle|cPickle|marshal|shelve|dill)\b|\beval\(|\bexec\(")
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in SOURCES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []


def sql_interpolations() -> list[tuple[str, int, str]]:
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        messages = {
            id(inner)
            for call in ast.walk(tree)
            if isinstance(call, ast.Call) and ast.unparse(call.func).endswith(_ERRORS)
            for inner in ast.walk(call)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.JoinedStr) or not node.values or id(node) in messages:
                continue
            text = "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
            if not SQL_ANYWHERE.search(text):
                continue
            for value in node.values:
                if isinstance(value, ast.FormattedValue):
                    found.append((path.name, node.lineno, ast.unparse(value.value)))
    return found


def test_sql_strings_interpolate_no_values() -> None:
    interpolations = sql_interpolations()
    assert len(interpolations) > 10  # the scan does see the store's SQL
    unexpected = [entry for entry in interpolations if entry[2] not in ALLOWED_IN_SQL]
    assert unexpected == []


def test_every_allowed_interpolation_is_still_used() -> None:
    used = {entry[2] for entry in sql_interpolations()}
    assert sorted(ALLOWED_IN_SQL - used) == []  # a stale entry would hide a new use


def test_the_scan_would_catch_a_value_in_sql(tmp_path: Path) -> None:
    bad = 'def f(conn, run_id):\n    conn.execute(f"SELECT * FROM runs WHERE run_id = {run_id}")\n'
    node = next(n for n in ast.walk(ast.parse(bad)) if isinstance(n, ast.JoinedStr))
    assert isinstance(node.values[0], ast.Constant) and SQL_START.match(str(node.values[0].value))
    assert ast.unparse(node.values[1].value) not in ALLOWED_IN_SQL  # type: ignore[attr-defined]
