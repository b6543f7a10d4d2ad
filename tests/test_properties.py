"""Property-based tests: codec round trips, and generated workflows replaying after a crash."""

# Type hints built at run time from generated ones (list[hint]) are what is tested here.
# mypy: disable-error-code="valid-type,misc"

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable
from durable._base.codec import decode, encode
from durable.testing import crash, replay


class Mood(enum.Enum):
    CALM = "calm"
    BUSY = "busy"


@dataclasses.dataclass
class Record:
    name: str
    when: dt.datetime
    tags: list[str]
    mood: Mood
    amount: Optional[Decimal] = None  # noqa: UP045


SCALARS: list[tuple[st.SearchStrategy[Any], Any]] = [
    (st.integers(-(2**63), 2**64 - 1), int),  # orjson's range; see the test below
    (st.floats(allow_nan=False, allow_infinity=False), float),
    (st.text(), str),
    (st.booleans(), bool),
    (st.uuids(), uuid.UUID),
    (st.dates(), dt.date),
    (st.datetimes(timezones=st.just(dt.UTC)), dt.datetime),
    (st.decimals(allow_nan=False, allow_infinity=False), Decimal),
    (st.sampled_from(Mood), Mood),
    (
        st.builds(
            Record,
            name=st.text(),
            when=st.datetimes(timezones=st.just(dt.UTC)),
            tags=st.lists(st.text(), max_size=3),
            mood=st.sampled_from(Mood),
            amount=st.none() | st.decimals(allow_nan=False, allow_infinity=False),
        ),
        Record,
    ),
]


def typed_values() -> st.SearchStrategy[tuple[Any, Any]]:
    scalar = st.one_of(*(strategy.map(lambda v, h=hint: (v, h)) for strategy, hint in SCALARS))

    def containers(inner: st.SearchStrategy[tuple[Any, Any]]) -> st.SearchStrategy[tuple[Any, Any]]:
        return inner.flatmap(
            lambda pair: st.one_of(
                st.lists(st.just(pair[0]), max_size=3).map(lambda v: (v, list[pair[1]])),
                st.dictionaries(st.text(), st.just(pair[0]), max_size=3).map(
                    lambda v: (v, dict[str, pair[1]])
                ),
                st.just(((pair[0], pair[0]), tuple[pair[1], pair[1]])),
                st.just((None, Optional[pair[1]])),  # noqa: UP045
            )
        )

    return st.recursive(scalar, containers, max_leaves=5)


@given(typed_values())
@settings(max_examples=300, deadline=None)
def test_codec_round_trips_supported_types(pair: tuple[Any, Any]) -> None:
    value, hint = pair
    assert decode(encode(value), hint) == value


def test_integers_beyond_64_bits_are_refused_clearly() -> None:
    with pytest.raises(durable.SerializationError, match="64-bit"):
        encode(2**64)


# -- generated workflows, crashed at a random step and resumed ---------------

Op = tuple[str, Any]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("step"), st.integers(0, 99)),
        st.tuples(st.just("sleep"), st.integers(1, 86400)),
        st.tuples(st.just("gather"), st.lists(st.integers(0, 99), min_size=2, max_size=4)),
        st.tuples(st.just("flaky"), st.integers(0, 99)),
    ),
    min_size=1,
    max_size=8,
)


class Crash:
    """Blocks the step body that starts as number ``at``, so the test can crash there."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.started = 0
        self.reached = asyncio.Event()
        self.completed: list[int] = []


CRASH: Crash | None = None


async def body(value: int) -> int:
    if CRASH is not None:
        CRASH.started += 1
        if CRASH.started == CRASH.at:
            CRASH.reached.set()
            await asyncio.Event().wait()
        CRASH.completed.append(value)
    return value * 2


async def flaky_body(value: int) -> int:
    if durable.step_info().attempt == 1:
        raise ConnectionError("first attempt fails")
    return await body(value)


@durable.workflow(name="properties.program")
async def program(ctx: durable.WorkflowContext, steps: list[list[Any]]) -> list[Any]:
    results: list[Any] = []
    for index, (kind, arg) in enumerate(steps):
        if kind == "step":
            results.append(await ctx.step(f"step{index}", body, arg))
        elif kind == "sleep":
            await ctx.sleep(arg)
            results.append("slept")
        elif kind == "gather":
            calls = [ctx.step(f"g{index}.{i}", body, v) for i, v in enumerate(arg)]
            results.append(list(await asyncio.gather(*calls)))
        else:
            policy = durable.RetryPolicy(max_attempts=2, initial_interval=1)
            flaky = durable.step(name=f"flaky{index}", retry=policy)(flaky_body)
            results.append(await flaky(arg))
    return results


def expected(steps: list[Op]) -> list[Any]:
    out: list[Any] = []
    for kind, arg in steps:
        if kind == "sleep":
            out.append("slept")
        elif kind == "gather":
            out.append([v * 2 for v in arg])
        else:
            out.append(arg * 2)
    return out


def body_count(steps: list[Op]) -> int:
    """How many step bodies the program runs (a sleep runs none)."""
    return sum(len(arg) if kind == "gather" else int(kind != "sleep") for kind, arg in steps)


async def run_program(
    folder: Path, steps: list[Op], crash_at: int | None
) -> tuple[Any, dict[str, Any]]:
    global CRASH
    CRASH = Crash(crash_at) if crash_at is not None else None
    clock = durable.VirtualClock()
    rt = durable.Runtime(folder / "journal.db", clock=clock)
    await rt.open()
    try:
        handle = await rt.start(program, [list(op) for op in steps], run_id="p")
        if CRASH is not None:
            with clock.awaiting(CRASH.reached.is_set):  # the virtual clock skips sleeps until
                await asyncio.wait_for(CRASH.reached.wait(), 10)
            rt = await crash(rt)
        result = await rt.handle(handle.run_id).result(timeout=10)
        return result, await rt.export("p")
    finally:
        await rt.close()
        CRASH = None


def completed_entries(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What stands at each position once done (journal order may differ under gather)."""
    return sorted(
        (e["position"], e["kind"], e["name"], str(e["payload"]))
        for e in document["events"]
        if e["kind"] not in ("step.started", "step.failed", "sleep.started", "run.recovered")
    )


@given(steps=ops, data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_workflows_replay_deterministically_after_a_crash(
    steps: list[Op], data: st.DataObject
) -> None:
    bodies = body_count(steps)
    crash_at = data.draw(st.integers(1, bodies), label="crash at step body") if bodies else None
    with tempfile.TemporaryDirectory() as clean, tempfile.TemporaryDirectory() as crashed:
        clean_result, clean_history = asyncio.run(run_program(Path(clean), steps, None))
        crashed_result, crashed_history = asyncio.run(run_program(Path(crashed), steps, crash_at))
    assert clean_result == crashed_result == expected(steps)
    assert completed_entries(crashed_history) == completed_entries(clean_history)
    asyncio.run(replay(program, crashed_history))
