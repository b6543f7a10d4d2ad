"""``durable.run`` from a script: run again after a crash, it resumes the same run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import durable
from durable.runtime.script import script_run_id

from .processes import finish, lines, sigkill, spawn, wait_for_line

RAN: list[str] = []


@durable.step
async def charge(order_id: str) -> str:
    RAN.append(order_id)
    return f"charged {order_id}"


@durable.workflow(name="script.checkout")
async def checkout(ctx: durable.WorkflowContext, order_id: str) -> str:
    return await charge(order_id)


async def runs(db: Path | str) -> list[durable.RunInfo]:
    async with durable.Runtime(db, recover=False) as rt:
        return await rt.list_runs()


def test_running_the_script_again_returns_the_result_of_the_same_run(db: Path | str) -> None:
    RAN.clear()
    assert durable.run(checkout, "o-1", db=str(db)) == "charged o-1"
    assert durable.run(checkout, "o-1", db=str(db)) == "charged o-1"
    assert durable.run(checkout, "o-2", db=str(db)) == "charged o-2"  # other input: a new run
    assert RAN == ["o-1", "o-2"]
    listed = asyncio.run(runs(db))
    derived = [script_run_id(checkout, (order,), {}) for order in ("o-1", "o-2")]
    assert sorted(run.run_id for run in listed) == sorted(derived)
    assert all(run.run_id.startswith("script.checkout-") for run in listed)


def test_a_given_run_id_is_used_as_it_is(db: Path | str) -> None:
    assert durable.run(checkout, "o-3", db=str(db), run_id="order-3") == "charged o-3"
    assert [run.run_id for run in asyncio.run(runs(db))] == ["order-3"]


def test_a_script_killed_mid_step_resumes_its_run_when_run_again(
    db: Path | str, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    child = spawn(str(db), "script", str(effects), block="second")
    wait_for_line(effects, "start second 1", child)
    sigkill(child)
    again = spawn(str(db), "script", str(effects))
    finish(again)
    started = [line.split()[:3] for line in lines(effects) if line.startswith("start")]
    assert started == [
        ["start", "first", "1"],
        ["start", "second", "1"],
        ["start", "second", "2"],  # the interrupted attempt, tried again: first is not
        ["start", "third", "1"],
    ]
    assert lines(effects)[-1] == "result ['first-done', 'second-done', 'third-done']"
    assert len(asyncio.run(runs(db))) == 1
