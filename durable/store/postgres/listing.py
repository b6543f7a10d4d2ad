"""Which runs a PostgreSQL query keeps: the clause for unfinished runs, and a listing's
filters as SQL with numbered parameters."""

from __future__ import annotations

from typing import Any

from durable.journal.records import TERMINAL
from durable.store.ports import RunFilter

_ACTIVE = f"status NOT IN ({', '.join(repr(status) for status in sorted(TERMINAL))})"
"""Unfinished runs (the statuses are ours, never a caller's)."""


def runs_where(found: RunFilter) -> tuple[str, list[Any]]:
    """The condition of a listing of runs (``true``: all) and its parameters, numbered
    ``$1``... in order."""
    clauses: list[str] = [_ACTIVE] if found.unfinished else ["true"]
    params: list[Any] = []

    def where(condition: str, *values: Any) -> None:
        """``condition`` with ``{0}``, ``{1}``... for ``values``, numbered as parameters."""
        params.extend(values)
        first = len(params) - len(values) + 1
        clauses.append(condition.format(*(f"${first + i}" for i in range(len(values)))))

    if found.parent is not None:
        where("parent_run_id = {0}", found.parent)
    if found.after is not None:
        where("(created_at < {0} OR (created_at = {0} AND runs.run_id > {1}))", *found.after)
    if found.since is not None:
        where("created_at >= {0}", found.since)
    if found.until is not None:
        where("created_at < {0}", found.until)
    if found.id_contains is not None:
        where("strpos(runs.run_id, {0}) > 0", found.id_contains)
    if found.id_prefix is not None:
        where("starts_with(runs.run_id, {0})", found.id_prefix)
    if found.status is not None:
        where("status = {0}", found.status)
    if found.workflow is not None:
        where("workflow = {0}", found.workflow)
    return " AND ".join(clauses), params
