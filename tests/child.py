"""A program the crash tests run as a real child process and kill with SIGKILL.

Usage: python -m tests.child DB SCENARIO EFFECTS [ARG]

Steps append "start <name> <attempt> ..." / "end <name> <attempt> ..." lines
to the EFFECTS file (flushed and fsynced), so the parent knows exactly where
the child is before it kills it. With BLOCK=<step name> in the environment,
that step blocks forever after logging its start: the parent kills it there;
SLOW=<step name> makes it take two seconds. DURABLE_IDENTITY and
DURABLE_LEASE set the runtime's identity and lease.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from typing import Any

import durable

EFFECTS = os.environ.get("DURABLE_TEST_EFFECTS", "")

# Workers that must open their runtimes together wait here, once imported, for a common
# moment: process start-up varies by far more than the moment "together" means.
if os.environ.get("DURABLE_TEST_OPEN_AT"):
    time.sleep(max(0.0, float(os.environ["DURABLE_TEST_OPEN_AT"]) - time.time()))


def effect(line: str) -> None:
    with open(EFFECTS, "a") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


async def body(name: str) -> str:
    info = durable.step_info()
    retry = info.retry
    effect(
        f"start {name} {info.attempt} {retry.prior_completion_status} {info.idempotency_key}"
        f" gates={retry.gate_count} completions={retry.completion_count}"
        f" run={info.run_id} pid={os.getpid()} at={time.time()}"
    )
    if os.environ.get("BLOCK") == name:
        await asyncio.Event().wait()
    if os.environ.get("SLOW") == name:
        await asyncio.sleep(2)
    effect(f"end {name} {info.attempt} run={info.run_id} pid={os.getpid()}")
    return f"{name}-done"


@durable.step
async def first() -> str:
    return await body("first")


@durable.step
async def second() -> str:
    return await body("second")


@durable.step
async def third() -> str:
    return await body("third")


@durable.step(at_most_once=True)
async def pay() -> str:
    return await body("pay")


@durable.workflow(name="child.three_steps")
async def three_steps(ctx: durable.WorkflowContext) -> list[str]:
    return [await first(), await second(), await third()]


@durable.workflow(name="child.pay_once")
async def pay_once(ctx: durable.WorkflowContext) -> str:
    await first()
    try:
        return await pay()
    except durable.StepInterrupted:
        return "interrupted"


@durable.workflow(name="child.sleeper")
async def sleeper(ctx: durable.WorkflowContext, seconds: float) -> float:
    await first()
    await ctx.sleep(seconds)
    effect(f"woke {time.time()}")
    return ctx.now().timestamp()


@durable.workflow(name="child.approval")
async def approval(ctx: durable.WorkflowContext) -> str:
    await first()
    answer = await ctx.wait_for_user("Ship it?", input_type="approval")
    effect(f"answered {answer} at {time.time()}")
    await second()
    return str(answer)


@durable.workflow(name="child.ask_text")
async def ask_text(ctx: durable.WorkflowContext, greeting: str = "hello") -> str:
    """Says what type the answer arrived as: ``'007'`` for text, ``42`` for JSON."""
    answer = await ctx.wait_for_user("Your code?", timeout=3600)
    return f"{greeting} {answer!r}"


@durable.workflow(name="child.pair")
async def pair(ctx: durable.WorkflowContext) -> list[str]:
    both = await asyncio.gather(ctx.step("fetch", str, "a"), ctx.step("fetch", str, "b"))
    return list(both)


async def tick(i: int) -> int:
    return i


@durable.workflow(name="child.hammer")
async def hammer_run(ctx: durable.WorkflowContext, steps: int) -> int:
    return sum([await ctx.step("tick", tick, i) for i in range(steps)])


async def hammer(db: str, runs: int) -> None:
    """Many concurrent workflows, to write hard at the same time as another process."""
    durability = os.environ.get("DURABLE_DURABILITY", "normal")
    async with durable.Runtime(db, durability=durability) as rt:
        handles = [
            await rt.start(hammer_run, 10, run_id=f"hammer-{os.getpid()}-{i}") for i in range(runs)
        ]
        results = [await handle.result() for handle in handles]
        effect(f"hammered {len(results)} {sum(results)}")


async def effectful(run_id: str, position: int) -> str:
    attempt = durable.step_info().attempt
    effect(f"begin {run_id} {position} {attempt} pid={os.getpid()}")
    await asyncio.sleep(random.random() * 0.004)
    effect(f"finish {run_id} {position} {attempt}")
    return f"{run_id}-{position}"


async def paced_step(run_id: str, position: int) -> str:
    effect(f"begin {run_id} {position} pid={os.getpid()}")
    await asyncio.sleep(0.1)
    return f"{run_id}-{position}"


@durable.workflow(name="child.paced")
async def paced(ctx: durable.WorkflowContext, steps: int) -> int:
    """Steps that take a while, so runs are still running while workers come and go."""
    for position in range(steps):
        await ctx.step(f"step-{position}", paced_step, ctx.run_id, position)
    return steps


@durable.workflow(name="child.torture")
async def torture_run(ctx: durable.WorkflowContext, steps: int) -> list[str]:
    results = []
    for position in range(steps):
        if position % 5 == 4:
            once = durable.step(name=f"once-{position}", at_most_once=True)(effectful)
            try:
                results.append(await once(ctx.run_id, position))
            except durable.StepInterrupted:
                results.append("interrupted")
        else:
            results.append(await ctx.step(f"step-{position}", effectful, ctx.run_id, position))
    return results


async def torture(db: str, runs: int, steps: int) -> None:
    async with durable.Runtime(db, durability="normal") as rt:
        handles = [await rt.start(torture_run, steps, run_id=f"t{i}") for i in range(runs)]
        for handle in handles:
            effect(f"result {handle.run_id} {' '.join(await handle.result())}")
        effect("all done")


@durable.step
async def crash_the_process() -> None:
    effect(f"poison pid={os.getpid()}")
    os.kill(os.getpid(), 9)


@durable.workflow(name="child.poison")
async def poison(ctx: durable.WorkflowContext) -> str:
    await first()
    await crash_the_process()
    return "unreachable"


@durable.step
async def kid_step() -> str:
    return await body("kid")


@durable.workflow(name="child.kid")
async def kid(ctx: durable.WorkflowContext, n: int) -> str:
    return f"{await kid_step()} {n}"


@durable.workflow(name="child.family")
async def family(ctx: durable.WorkflowContext) -> str:
    """A parent whose child may run in another process, or die with this one."""
    result = await kid(7)
    await second()
    return result


@durable.workflow(name="child.note_taker")
async def note_taker(ctx: durable.WorkflowContext) -> list[Any]:
    notes = [await ctx.wait_for_event("note")]
    notes.append(await ctx.wait_for_event("note", timeout=3600))
    return notes


@durable.workflow(name="child.sender")
async def sender(ctx: durable.WorkflowContext) -> str:
    await ctx.send_event("notes", "note", "from the sender")
    await third()  # BLOCK=third kills it right after the send is journaled
    return "sent"


NEW_CODE = os.environ.get("PATCH_CODE") == "new"


@durable.workflow(name="child.versioned")
async def versioned(ctx: durable.WorkflowContext) -> str:
    """Two versions of one workflow's code, chosen by PATCH_CODE when the process starts."""
    await ctx.wait_for_event("go")
    if NEW_CODE and ctx.patched("extra-step"):
        await ctx.step("extra", tick, 1)
        branch = "new"
    else:
        branch = "old"
    await ctx.wait_for_event("finish")
    return branch


LIMITED = durable.Queue("child.limited", concurrency=2, per_runtime=1)
SLOTS = durable.Queue("child.slots", concurrency=2)


async def slot_body(name: str) -> None:
    """A step whose start and end say when a run held its queue slot, and where."""
    info = durable.step_info()
    effect(f"qstart {info.run_id} {info.attempt} pid={os.getpid()} at={time.time()}")
    if os.environ.get("BLOCK") == name:
        await asyncio.Event().wait()
    await asyncio.sleep(0.05)
    effect(f"qend {info.run_id} pid={os.getpid()} at={time.time()}")


@durable.workflow(name="child.limited", queue=LIMITED)
async def limited(ctx: durable.WorkflowContext, i: int) -> int:
    await ctx.step("limited", slot_body, "limited")
    return i


@durable.workflow(name="child.slots", queue=SLOTS)
async def slots(ctx: durable.WorkflowContext, i: int) -> int:
    await ctx.step("slot", slot_body, "slot")
    return i


RATED = durable.Queue("child.rated", rate=(3, 1.0))


@durable.workflow(name="child.rated", queue=RATED)
async def rated(ctx: durable.WorkflowContext, i: int) -> int:
    await ctx.step("rated", slot_body, "rated")
    return i


@durable.workflow(name="child.approve")
async def approve(ctx: durable.WorkflowContext) -> str:
    return str(await ctx.wait_for_user("Ship it?", input_type="approval"))


WEBHOOK_SECRET = "whsec_ZHVyYWJsZS10ZXN0LXdlYmhvb2stc2VjcmV0LTMyYnk="  # Standard Webhooks form


@durable.workflow(name="child.hook", webhook=True, webhook_secret=WEBHOOK_SECRET)
async def hook(ctx: durable.WorkflowContext, body: dict[str, Any]) -> str:
    return f"got {body['order']}"


@durable.workflow(name="child.ask_about")
async def ask_about(ctx: durable.WorkflowContext, question: str) -> str:
    ctx.state.set("asked", question)
    await ctx.step("prepare", tick, 1)
    options = [{"id": "yes", "label": "Ship it"}, {"id": "no", "label": "Hold"}]
    answer = await ctx.wait_for_user(question, input_type="approval", options=options)
    await ctx.write_stream("log", f"answered {answer}")
    return str(answer)


@durable.workflow(name="child.streamer")
async def streamer(ctx: durable.WorkflowContext, first: str) -> str:
    await ctx.write_stream("out", first)
    await ctx.wait_for_event("go")
    await ctx.write_stream("out", {"second": True})
    await ctx.close_stream("out")
    return "streamed"


ANSWER = "The refund of 42 EUR was approved."


@durable.step(retry=durable.RetryPolicy(max_attempts=3, initial_interval=0.01))
async def speak(fail_first: bool) -> str:
    """A model's answer, token by token. Its first attempt says something else first,
    then blocks (BLOCK=speak: to be killed) or fails (``fail_first``: to be retried)."""
    attempt = durable.step_info().attempt
    if attempt == 1:
        for token in ("Let", " me", " think"):
            await durable.write_stream("answer", token)
        effect(f"spoke {attempt} pid={os.getpid()}")
        if os.environ.get("BLOCK") == "speak":
            await asyncio.Event().wait()
        if fail_first:
            raise RuntimeError("the model stopped mid-answer")
    for i, word in enumerate(ANSWER.split(" ")):
        await durable.write_stream("answer", word if i == 0 else f" {word}")
    return ANSWER


@durable.workflow(name="child.speaker")
async def speaker(ctx: durable.WorkflowContext, fail_first: bool = False) -> str:
    text = await speak(fail_first)
    await ctx.close_stream("answer")
    return text


@durable.step
async def spend() -> str:
    """Spends a quarter and ten tokens on each attempt; its first attempt then blocks
    (BLOCK=spend: to be killed once the charge is in the journal)."""
    attempt = durable.step_info().attempt
    durable.charge(usd=0.25, tokens=10)
    effect(f"charged {attempt} pid={os.getpid()}")
    if attempt == 1 and os.environ.get("BLOCK") == "spend":
        await asyncio.Event().wait()
    return f"spent-{attempt}"


@durable.workflow(name="child.spender", budget=durable.Budget(usd=10.0))
async def spender(ctx: durable.WorkflowContext) -> str:
    return await spend()


WORKFLOWS: dict[str, Any] = {
    "spender": spender,
    "three_steps": three_steps,
    "pay_once": pay_once,
    "sleeper": sleeper,
    "approval": approval,
    "poison": poison,
    "family": family,
    "sender": sender,
}


async def respond(db: str, run_id: str, value: str) -> None:
    """Answer a wait from a process that runs no workflow."""
    async with durable.Runtime(db, recover=False) as rt:
        await rt.respond(run_id, value)
        effect(f"responded {value} at {time.time()}")


async def main(db: str, scenario: str, args: list[str]) -> None:
    if scenario == "respond":
        await respond(db, args[0], args[1])
        return
    if scenario == "hammer":
        await hammer(db, int(args[0]))
        return
    if scenario == "torture":
        await torture(db, int(args[0]), int(args[1]))
        return
    identity = os.environ.get("DURABLE_IDENTITY") or None
    lease = float(os.environ.get("DURABLE_LEASE", "15"))
    recoveries = int(os.environ.get("DURABLE_MAX_RECOVERIES", "10"))
    only = os.environ.get("DURABLE_ONLY")  # the one workflow this process executes
    async with durable.Runtime(
        db,
        identity=identity,
        lease_seconds=lease,
        max_recoveries=recoveries,
        workflows=None if only is None else [WORKFLOWS[only]],
    ) as rt:
        effect(f"open {time.time()}")
        wf = WORKFLOWS[scenario]
        typed_args = [float(a) for a in args] if scenario == "sleeper" else args
        handle = await rt.start(wf, *typed_args, run_id=f"run-{scenario}")
        try:
            result = await handle.result()
        except durable.WorkflowFailed as failed:
            result = f"failed {failed.error.get('code')}"
        effect(f"result {result!r} at {time.time()}")


if __name__ == "__main__":
    EFFECTS = sys.argv[3]
    if sys.argv[2] == "script":  # a script's durable.run, without a run id
        effect(f"result {durable.run(three_steps, db=sys.argv[1])!r}")
    else:
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[4:]))
