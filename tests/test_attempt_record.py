"""What a step attempt journals for people: its arguments, each failed attempt's error
and traceback; arguments that cannot be stored never fail the step; old journals
without them still replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import durable
from durable.workflow.attempt_record import TRACEBACK_CHARS, traceback_text

from .journal_sql import execute


class Opaque:
    """Not JSON: its arguments are journaled as their repr."""

    def __repr__(self) -> str:
        return "Opaque(42)"


@durable.step(retry=durable.RetryPolicy(max_attempts=2, initial_interval=0.01))
async def flaky_charge(order: str, *, cents: int) -> int:
    raise ValueError(f"card declined for {order}")


@durable.step
async def takes_opaque(thing: Any, big: str) -> str:
    return "ok"


@durable.workflow(name="attempts.fails")
async def fails(ctx: durable.WorkflowContext) -> None:
    await flaky_charge("o-1", cents=1999)


@durable.workflow(name="attempts.odd_args")
async def odd_args(ctx: durable.WorkflowContext) -> str:
    await takes_opaque(1, "y" * 5000)  # JSON, but over max_value_bytes
    return await takes_opaque(Opaque(), "x" * 5000)


def _steps(history: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event["payload"] for event in history if event["kind"] == kind]


async def test_each_attempt_journals_its_arguments_error_and_traceback(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(fails, run_id="f")
        with pytest.raises(durable.WorkflowFailed):
            await handle.result(timeout=30)
        history = await rt.history("f")
    started = _steps(history, "step.started")
    assert [p["attempt"] for p in started] == [1, 2]
    assert all(p["input"] == {"args": ["o-1"], "kwargs": {"cents": 1999}} for p in started)
    failed = _steps(history, "step.failed")
    assert [p["attempt"] for p in failed] == [1, 2]
    for payload in failed:
        assert payload["error"]["message"] == "card declined for o-1"
        text = payload["traceback"]
        assert text.startswith("Traceback (most recent call last):")
        assert "in flaky_charge" in text and text.endswith("ValueError: card declined for o-1\n")
        assert "durable/workflow/steps.py" not in text  # from the step's own code on
    assert "retry_at" in failed[0] and "final" in failed[1]


async def test_arguments_that_cannot_be_stored_are_kept_as_their_repr(db: Path | str) -> None:
    async with durable.Runtime(db, max_value_bytes=4000) as rt:
        assert await rt.start(odd_args, run_id="o") is not None
        assert await rt.handle("o").result(timeout=30) == "ok"  # the step was not failed
        too_big, started = _steps(await rt.history("o"), "step.started")
    assert "input" not in too_big and too_big["input_repr"].startswith("(1, 'yyy")
    assert "max_value_bytes" in too_big["input_error"]
    assert "input" not in started
    assert started["input_repr"].startswith("(Opaque(42), 'xxx")
    assert len(started["input_repr"]) <= 2000
    assert started["input_error"].startswith("argument 1: cannot store a value of type")
    assert "Opaque" in started["input_error"]


def test_a_traceback_is_cut_to_its_end() -> None:
    with pytest.raises(RuntimeError) as caught:
        raise RuntimeError("x" * 50_000 + " at the bottom")
    text = traceback_text(caught.value)
    assert len(text) < TRACEBACK_CHARS + 100
    assert text.startswith("... (") and text.endswith("x at the bottom\n")
    assert len(traceback_text(caught.value, limit=2000)) < 600  # within max_value_bytes


@durable.workflow(name="attempts.two")
async def two(ctx: durable.WorkflowContext) -> list[str]:
    return [await takes_opaque(1, "a"), await takes_opaque(2, "b")]


async def test_a_journal_without_arguments_or_tracebacks_replays(db: Path | str) -> None:
    """Journals written before these fields existed have ``{"attempt": n}`` alone."""
    async with durable.Runtime(db) as rt:
        await rt.start(two, run_id="old")
        await rt.handle("old").result(timeout=30)
    execute(db, "UPDATE events SET payload = ? WHERE kind = 'step.started'", ('{"attempt":1}',))
    async with durable.Runtime(db) as rt:
        await rt.rerun_from("old", 1)  # replays position 0 from its old entries
        assert await rt.handle("old").result(timeout=30) == ["ok", "ok"]
        started = _steps(await rt.history("old"), "step.started")
    assert started[0] == {"attempt": 1}
    assert started[-1]["input"] == {"args": [2, "b"], "kwargs": {}}
