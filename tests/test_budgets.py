"""Budgets: spend charged by steps, caps over run trees, a person's raise or stop."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest

import durable

from .journal_sql import execute
from .processes import finish, sigkill, spawn, wait_for_line

CALLS: list[str] = []


@durable.step
async def model_call(label: str, usd: float = 0.4, tokens: int = 100) -> str:
    CALLS.append(label)
    durable.charge(usd=usd, tokens=tokens)
    return label


@durable.step
def sync_model_call(label: str) -> str:
    CALLS.append(label)
    durable.charge(usd=Decimal("0.5"), tokens=7)  # from the step's worker thread, as priced
    return label


@durable.workflow(name="budget.loop", budget=durable.Budget(usd=1.0))
async def loop(ctx: durable.WorkflowContext, rounds: int) -> list[str]:
    done = []
    for i in range(rounds):
        try:
            done.append(await model_call(f"call-{i}"))
        except durable.BudgetExceeded:
            done.append("stopped")
            break
    return done


@durable.workflow(name="budget.plain")
async def plain(ctx: durable.WorkflowContext, rounds: int) -> list[str]:
    return [await ctx.step(sync_model_call, f"sync-{i}") for i in range(rounds)]


@durable.workflow(name="budget.helper")
async def helper(ctx: durable.WorkflowContext, label: str) -> str:
    return await model_call(label, 0.3, 10)


@durable.workflow(name="budget.own", budget=durable.Budget(tokens=15))
async def own_budget(ctx: durable.WorkflowContext, label: str) -> list[str]:
    return [await model_call(f"{label}-{i}", 0.0, 10) for i in range(3)]


@durable.workflow(name="budget.team", budget=durable.Budget(usd=1.0))
async def team(ctx: durable.WorkflowContext) -> list[str]:
    results = []
    for i in range(5):
        try:
            results.append(await helper(f"child-{i}"))
        except durable.BudgetExceeded:
            results.append("stopped")
            break
    return results


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


async def test_a_reached_cap_parks_the_run_before_the_next_step(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(loop, 5, run_id="loop")
        question = await rt.wait_for_question("loop", timeout=10)
        # 0.4 + 0.4 < 1.0 let the third call start; 1.2 holds the fourth back.
        assert CALLS == ["call-0", "call-1", "call-2"]
        assert (await rt.get_run("loop")).status == durable.RunStatus.WAITING
        assert question.input_type == "budget"
        assert question.wait_id == "budget:3"
        assert question.options == [{"id": "stop", "label": "Stop"}]
        assert question.budget is not None
        assert question.budget["run_id"] == "loop"
        assert question.budget["unit"] == "usd"
        assert question.budget["spent"]["usd"] == pytest.approx(1.2)
        assert question.budget["cap"] == {"usd": 1.0, "tokens": None}
        assert "$1.2000 of its $1.0 budget" in question.question

        usage = await rt.usage("loop")
        assert usage.usd == pytest.approx(1.2)
        assert usage.tokens == 300
        assert usage.budget == durable.Budget(usd=1.0)
        assert usage.budget_run_id == "loop"
        assert sorted(usage.by_step) == [0, 1, 2]
        assert usage.by_step[2] == durable.StepUsage("model_call", 0.4, 100, 1)

        with pytest.raises(durable.InvalidResponse, match="raise_budget"):
            await rt.respond("loop", "yes")
        with pytest.raises(ValueError, match="below what run 'loop' spent"):
            await rt.raise_budget("loop", usd=1.0)
        raised = await rt.raise_budget("loop", usd=2.0)
        assert (raised.budget_run_id, raised.budget) == ("loop", durable.Budget(usd=2.0))
        assert raised.usd == pytest.approx(1.2)
        assert await handle.result() == [f"call-{i}" for i in range(5)]
        assert (await rt.usage("loop")).usd == pytest.approx(2.0)


async def test_stop_raises_budget_exceeded_at_the_step_call_and_replays(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(loop, 5, run_id="stop")
        await rt.wait_for_question("stop", timeout=10)
    async with durable.Runtime(db) as rt:  # parked across a restart
        assert (await rt.pending_waits("stop"))[0].input_type == "budget"
        await rt.respond("stop", "stop")
        assert await rt.handle("stop").result() == ["call-0", "call-1", "call-2", "stopped"]
        report = await rt.check()  # the journal replays to the same path
        assert report.ok, report
    assert CALLS == ["call-0", "call-1", "call-2"]


async def test_a_budget_covers_the_run_tree(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(team, run_id="team")
        question = await rt.wait_for_question("team", timeout=10)
        # Three children spent 0.9 < 1.0, so a fourth was let start (and its step): 1.2
        # holds the fifth child's start back.
        assert question.budget is not None and question.budget["run_id"] == "team"
        assert question.wait_id == "budget:4"
        usage = await rt.usage("team")
        assert usage.usd == pytest.approx(1.2)
        assert usage.own.usd == 0 and usage.by_step == {}
        child_usage = await rt.usage("team.3")
        assert child_usage.usd == pytest.approx(0.3)
        assert (child_usage.budget, child_usage.budget_run_id) == (durable.Budget(usd=1.0), "team")
        await rt.respond("team", "stop")
        assert await handle.result() == ["child-0", "child-1", "child-2", "child-3", "stopped"]


async def test_a_child_is_held_back_by_its_parents_budget(db: Path | str) -> None:
    @durable.workflow(name="budget.spender_child")
    async def spender_child(ctx: durable.WorkflowContext) -> list[str]:
        return [await model_call(f"deep-{i}", 0.5, 0) for i in range(4)]

    @durable.workflow(name="budget.parent", budget=durable.Budget(usd=1.0))
    async def parent(ctx: durable.WorkflowContext) -> list[str]:
        return await spender_child()

    async with durable.Runtime(db) as rt:
        handle = await rt.start(parent, run_id="p")
        await _started(rt, "p.0")
        question = await rt.wait_for_question("p.0", timeout=10)
        assert CALLS == ["deep-0", "deep-1"]
        assert question.budget is not None and question.budget["run_id"] == "p"
        # Raising through the child raises the parent's budget, which holds it back.
        raised = await rt.raise_budget("p.0", usd=5.0)
        assert (raised.budget_run_id, raised.budget) == ("p", durable.Budget(usd=5.0))
        assert await handle.result() == [f"deep-{i}" for i in range(4)]
        assert (await rt.usage("p")).budget == durable.Budget(usd=5.0)


async def test_a_child_with_a_budget_of_its_own_answers_to_both(db: Path | str) -> None:
    @durable.workflow(name="budget.outer", budget=durable.Budget(usd=100.0, tokens=1000))
    async def outer(ctx: durable.WorkflowContext) -> list[str]:
        return await own_budget("inner")

    async with durable.Runtime(db) as rt:
        handle = await rt.start(outer, run_id="o")
        await _started(rt, "o.0")
        question = await rt.wait_for_question("o.0", timeout=10)
        assert question.budget is not None
        assert (question.budget["run_id"], question.budget["unit"]) == ("o.0", "tokens")
        assert (await rt.usage("o")).tokens == 20
        # Raising the outer budget leaves a question on the inner one as it is.
        await rt.raise_budget("o", tokens=2000)
        assert [w.wait_id for w in await rt.pending_waits("o.0")] == ["budget:2"]
        await rt.raise_budget("o.0", tokens=30)
        assert await handle.result() == ["inner-0", "inner-1", "inner-2"]
        usage = await rt.usage("o")
        assert (usage.tokens, usage.budget) == (30, durable.Budget(usd=100.0, tokens=2000))


async def test_start_run_budget_and_charges_from_a_sync_step(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        run = await rt.start_run(plain, [3], {}, run_id="s", budget=durable.Budget(usd=0.75))
        question = await rt.wait_for_question("s", timeout=10)
        assert question.budget is not None and question.budget["spent"]["tokens"] == 14
        assert (await rt.get_run("s")).input["budget"] == {"usd": 0.75, "tokens": None}
        await rt.raise_budget("s", usd=5)
        assert await run.result() == ["sync-0", "sync-1", "sync-2"]
        assert (await rt.usage("s")).tokens == 21
        assert (await rt.metrics()).spend[("budget.plain", "tokens")] == 21


async def test_no_budget_means_no_question_and_usage_still_counts(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        handle = await rt.start(plain, 2, run_id="free")
        assert await handle.result() == ["sync-0", "sync-1"]
        usage = await rt.usage("free")
        assert (usage.usd, usage.budget, usage.budget_run_id) == (1.0, None, None)
        with pytest.raises(durable.NoBudget, match="no budget over it"):
            await rt.raise_budget("free", usd=3)
        with pytest.raises(durable.RunNotFound):
            await rt.usage("nope")


async def test_bad_amounts_and_calls_outside_a_step_are_refused(db: Path | str) -> None:
    with pytest.raises(ValueError, match="needs a cap"):
        durable.Budget()
    with pytest.raises(ValueError, match="usd must be a finite number"):
        durable.Budget(usd=float("nan"))
    with pytest.raises(ValueError, match="tokens must be an integer"):
        durable.Budget(tokens=-1)
    with pytest.raises(ValueError, match="tokens must be an integer from 0 to 2"):
        durable.Budget(tokens=2**63)
    with pytest.raises(ValueError, match="usd must be a finite number"):
        durable.Budget(usd=True)
    with pytest.raises(durable.DurableError, match="outside a step"):
        durable.charge(usd=1.0)

    @durable.workflow(name="budget.in_workflow")
    async def in_workflow(ctx: durable.WorkflowContext) -> None:
        durable.charge(tokens=1)

    async with durable.Runtime(db) as rt:
        handle = await rt.start(loop, 5, run_id="bad")
        await rt.wait_for_question("bad", timeout=10)
        with pytest.raises(ValueError, match="needs an amount"):
            await rt.raise_budget("bad")
        with pytest.raises(ValueError, match="usd must be a finite number"):
            await rt.raise_budget("bad", usd=-2)
        with pytest.raises(TypeError, match=r"durable\.Budget"):
            await rt.start_run(loop, [1], {}, budget={"usd": 1})  # type: ignore[arg-type]
        failed = await rt.start(in_workflow, run_id="wf-charge")
        with pytest.raises(durable.WorkflowFailed, match="outside a step"):
            await failed.result()
        await rt.respond("bad", "stop")
        assert (await handle.result())[-1] == "stopped"


def test_a_charge_survives_sigkill_of_its_attempt_and_counts_once(
    db: Path | str, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    child = spawn(str(db), "spender", str(effects), block="spend")
    wait_for_line(effects, "charged 1", child)
    asyncio.run(_until_charged(db, "run-spender", 0.25))  # committed before the kill
    sigkill(child)
    assert asyncio.run(_usage(db, "run-spender")) == (0.25, 10, 1)

    finish(spawn(str(db), "spender", str(effects)))
    assert wait_for_line(effects, "result").startswith("result 'spent-2'")
    # The killed attempt's spend and the second attempt's, each once, after any replay.
    assert asyncio.run(_usage(db, "run-spender")) == (0.5, 20, 2)
    finish(spawn(str(db), "spender", str(effects)))  # a finished run: nothing more spent
    assert asyncio.run(_usage(db, "run-spender")) == (0.5, 20, 2)


async def _usage(db: Path | str, run_id: str) -> tuple[float, int, int]:
    async with durable.Runtime(db, recover=False) as rt:
        usage = await rt.usage(run_id)
    return usage.usd, usage.tokens, usage.by_step[0].attempts


async def _until_charged(db: Path | str, run_id: str, usd: float) -> None:
    deadline = time.monotonic() + 20
    async with durable.Runtime(db, recover=False) as rt:
        while time.monotonic() < deadline:
            try:
                if (await rt.usage(run_id)).usd >= usd:
                    return
            except durable.RunNotFound:
                pass
            await asyncio.sleep(0.02)
    raise AssertionError(f"no charge of {usd} reached the journal of {run_id}")


async def _started(rt: durable.Runtime, run_id: str) -> None:
    """Until a child run has been started (its row written)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            await rt.get_run(run_id)
            return
        except durable.RunNotFound:
            await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} was not started")


async def test_questions_and_raises_replay_under_always_replay(db: Path | str) -> None:
    async with durable.Runtime(db, always_replay=True) as rt:
        handle = await rt.start(loop, 6, run_id="again")
        await rt.wait_for_question("again", timeout=10)
        await rt.raise_budget("again", usd=2.0)
        question = await rt.wait_for_question("again", timeout=10)
        assert question.wait_id == "budget:5"  # a question shares its step's position
        await rt.respond("again", "stop")
        assert await handle.result() == [f"call-{i}" for i in range(5)] + ["stopped"]
    assert [f"call-{i}" for i in range(5)] == CALLS


async def test_one_raise_lets_every_held_call_of_the_tree_go_on(db: Path | str) -> None:
    @durable.workflow(name="budget.fan_out", budget=durable.Budget(tokens=100))
    async def fan_out(ctx: durable.WorkflowContext) -> list[str]:
        first = await model_call("first", 0.0, 100)
        rest = await ctx.parallel(*(model_call(f"fan-{i}", 0.0, 10) for i in range(3)))
        return [first, *rest]

    async with durable.Runtime(db) as rt:
        handle = await rt.start(fan_out, run_id="fan")
        deadline = time.monotonic() + 10
        while len(await rt.pending_waits("fan")) < 3:  # each parallel call asks
            assert time.monotonic() < deadline, await rt.pending_waits("fan")
            await asyncio.sleep(0.01)
        assert sorted(w.wait_id for w in await rt.pending_waits("fan")) == [
            "budget:1",
            "budget:2",
            "budget:3",
        ]
        await rt.raise_budget("fan", tokens=1000)
        assert await handle.result() == ["first", "fan-0", "fan-1", "fan-2"]
        assert (await rt.usage("fan")).tokens == 130


async def test_a_budget_whose_holder_ended_is_raised_for_the_child_still_spending(
    db: Path | str,
) -> None:
    @durable.workflow(name="budget.left_behind", budget=durable.Budget(usd=1.0))
    async def left_behind(ctx: durable.WorkflowContext) -> str:
        await ctx.start_child(loop_free, 6)  # not awaited: the child goes on alone
        return "done"

    async with durable.Runtime(db) as rt:
        assert await (await rt.start(left_behind, run_id="lb")).result() == "done"
        question = await rt.wait_for_question("lb.0", timeout=10)
        assert question.budget is not None and question.budget["run_id"] == "lb"
        raised = await rt.raise_budget("lb.0", usd=10.0)
        assert (raised.budget_run_id, raised.budget) == ("lb", durable.Budget(usd=10.0))
        assert len(await rt.handle("lb.0").result()) == 6


@durable.workflow(name="budget.loop_free")
async def loop_free(ctx: durable.WorkflowContext, rounds: int) -> list[str]:
    return [await model_call(f"free-{i}") for i in range(rounds)]


async def test_a_held_call_that_loses_a_race_withdraws_its_question(db: Path | str) -> None:
    @durable.workflow(name="budget.race", budget=durable.Budget(tokens=100))
    async def race(ctx: durable.WorkflowContext) -> str:
        await model_call("first", 0.0, 100)
        index, _ = await ctx.first(model_call("held", 0.0, 1), ctx.wait_for_event("go"))
        answer = await ctx.wait_for_user("Done?")
        return f"{index} {answer}"

    async with durable.Runtime(db, always_replay=True) as rt:
        handle = await rt.start(race, run_id="race")
        question = await rt.wait_for_question("race", timeout=10)
        assert question.input_type == "budget"
        await rt.send_event("race", "go")
        deadline = time.monotonic() + 10
        while [w.question for w in await rt.pending_waits("race")] != ["Done?"]:
            assert time.monotonic() < deadline, await rt.pending_waits("race")
            await asyncio.sleep(0.01)
        await rt.respond("race", "yes")  # no wait_id: the only question left
        assert await handle.result() == "1 yes"
        assert await rt.pending_waits("race") == []
    assert CALLS == ["first"]


async def test_an_unreadable_budget_fails_its_own_tree_and_no_other_run(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(loop, 5, run_id="good")
        await rt.wait_for_question("good", timeout=10)
        await rt.start(loop, 5, run_id="bad")
        await rt.wait_for_question("bad", timeout=10)
    async with durable.Runtime(db) as rt:
        await rt.raise_budget("bad", usd=2.0)
        await rt.raise_budget("good", usd=2.0)
    # A raise no version writes, made by hand: the bad run's budget cannot be read.
    rewrite(db, "bad", "budget.raised", '{"usd": "lots"}')
    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.CorruptJournal, match="budget of run 'bad'"):
            await rt.usage("bad")
        assert (await rt.usage("good")).budget == durable.Budget(usd=2.0)
        with pytest.raises(durable.WorkflowFailed, match="budget of run 'bad'"):
            await rt.handle("bad").result()
        assert len(await rt.handle("good").result()) == 5


async def test_ten_charges_of_a_tenth_reach_a_cap_of_one(db: Path | str) -> None:
    @durable.workflow(name="budget.tenths", budget=durable.Budget(usd=1.0))
    async def tenths(ctx: durable.WorkflowContext) -> list[str]:
        return [await model_call(f"tenth-{i}", 0.1, 0) for i in range(11)]

    async with durable.Runtime(db) as rt:
        await rt.start(tenths, run_id="tenths")
        question = await rt.wait_for_question("tenths", timeout=10)
        assert question.wait_id == "budget:10"  # 0.1 ten times is the cap, not under it
        raised = await rt.raise_budget("tenths", usd=1.0)  # at what was spent: allowed
        assert raised.budget == durable.Budget(usd=1.0)


async def test_a_rerun_asks_again_and_no_earlier_answer_answers_it(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(loop, 6, run_id="again")
        await rt.wait_for_question("again", timeout=10)
        await rt.raise_budget("again", usd=1.3)  # position 3 goes on: 1.6 spent
        assert (await rt.wait_for_question("again", timeout=10)).wait_id == "budget:4"
        await rt.respond("again", "stop")
        assert (await rt.handle("again").result())[-1] == "stopped"
        calls = list(CALLS)
        await rt.rerun_from("again", 3)
        question = await rt.wait_for_question("again", timeout=10)
        # Asked anew at position 3; the raise that answered it before does not.
        assert question.wait_id == "budget:3.2"
        assert question.budget is not None
        assert question.budget["spent"]["usd"] == pytest.approx(1.6)
        assert [w.wait_id for w in await rt.pending_waits("again")] == ["budget:3.2"]
        assert calls == CALLS
        await rt.respond("again", "stop")
        assert await rt.handle("again").result() == [
            "call-0",
            "call-1",
            "call-2",
            "stopped",
        ]


def rewrite(db: Path | str, run_id: str, kind: str, payload: str) -> None:
    """Overwrite the payloads of a run's events of ``kind`` by hand, as no version does."""
    execute(
        db,
        "UPDATE events SET payload = ? WHERE run_id = ? AND kind = ?",
        (payload, run_id, kind),
    )


async def test_a_charge_no_version_writes_fails_the_run_that_checks_it(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(loop, 5, run_id="victim")
        await rt.wait_for_question("victim", timeout=10)
        await rt.start(loop, 5, run_id="other")
        await rt.wait_for_question("other", timeout=10)
    # A credit written by hand: counted, it would let the run spend past its cap.
    rewrite(db, "victim", "budget.charged", '{"position": 0, "usd": -100}')
    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.CorruptJournal, match="a charge no version writes"):
            await rt.usage("victim")
        await rt.raise_budget("other", usd=5.0)
        assert len(await rt.handle("other").result()) == 5
        handle = await rt.start(charges_too_much, run_id="too-much")
        with pytest.raises(durable.WorkflowFailed, match="a charge holds at most"):
            await handle.result()


@durable.step
async def too_much() -> None:
    durable.charge(usd=1e13)


@durable.workflow(name="budget.too_much")
async def charges_too_much(ctx: durable.WorkflowContext) -> None:
    await too_much()


NAMES = {"held": "model_call"}


@durable.workflow(name="budget.renamed", budget=durable.Budget(tokens=100))
async def renamed(ctx: durable.WorkflowContext) -> str:
    await model_call("first", 0.0, 100)
    return await ctx.step(NAMES["held"], model_call, "second", 0.0, 1)


async def test_a_question_knows_the_call_it_holds_so_a_renamed_one_diverges(
    db: Path | str,
) -> None:
    NAMES["held"] = "model_call"
    async with durable.Runtime(db) as rt:
        await rt.start(renamed, run_id="rn")
        assert (await rt.wait_for_question("rn", timeout=10)).wait_id == "budget:1"
    NAMES["held"] = "another_step"
    try:
        async with durable.Runtime(db) as rt:
            report = await rt.check()
            (diverged,) = report.diverged_runs
            assert (diverged.run_id, diverged.position) == ("rn", 1)
            assert (diverged.expected, diverged.received) == (
                "step 'model_call'",
                "step 'another_step'",
            )
    finally:
        NAMES["held"] = "model_call"
