"""A research agent that fans out to child workflows, publishes its progress, asks a
person, and survives a SIGKILL wherever it lands.

    python examples/agent_team.py

The ``research`` workflow reads three sources at once, each in a child workflow
of its own (a "fetch" and a "summarize" step, standing in for LLM calls), writes
a summary from their notes, and asks a person whether to publish it. Its
progress is in ``ctx.state``, readable from any process.

The demo runs the agent in a worker process and kills it with SIGKILL at a
random moment. A second worker resumes the run from the journal; this process
reads the agent's state, waits for its question and answers it. Every step body
prints a line when it runs: a step that had finished before the kill does not
run again, and no child is started twice.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import durable

SOURCES = ["arxiv", "news", "wiki"]
RUN_ID = "research-durable-execution"


def say(text: str) -> None:
    print(text, flush=True)


@durable.step
async def fetch(source: str, topic: str) -> str:
    info = durable.step_info()
    say(f"  RAN   fetch {source:<6} attempt {info.attempt} ({info.retry.prior_completion_status})")
    await asyncio.sleep(random.uniform(0.1, 0.4))  # a slow API
    return f"{source} has 3 papers on {topic}"


@durable.step
async def summarize(source: str, text: str) -> str:
    info = durable.step_info()
    say(f"  RAN   summarize {source:<6} attempt {info.attempt}")
    await asyncio.sleep(random.uniform(0.1, 0.3))  # an LLM call
    return f"[{source}] {text.split(' has ')[1]}"


@durable.step
async def write_summary(notes: list[str]) -> str:
    say(f"  RAN   write_summary of {len(notes)} notes")
    await asyncio.sleep(0.2)
    return " / ".join(notes)


@durable.step
async def publish(summary: str) -> str:
    say("  RAN   publish")
    return f"published: {summary}"


@durable.workflow(name="agent.read_source")
async def read_source(ctx: durable.WorkflowContext, source: str, topic: str) -> str:
    ctx.state.set("phase", "fetching")
    text = await fetch(source, topic)
    ctx.state.set("phase", "summarizing")
    return await summarize(source, text)


@durable.workflow(name="agent.research")
async def research(ctx: durable.WorkflowContext, topic: str) -> str:
    ctx.state.set("phase", f"reading {len(SOURCES)} sources")
    notes = await ctx.parallel(*(read_source(source, topic) for source in SOURCES))
    ctx.state.set("notes", notes)
    ctx.state.set("phase", "writing the summary")
    summary = await write_summary(notes)
    ctx.state.set("summary", summary)
    ctx.state.set("phase", "waiting for approval")
    answer = await ctx.wait_for_user(f"Publish this summary?\n  {summary}", input_type="approval")
    if answer != "yes":
        ctx.state.set("phase", "dropped")
        return "not published"
    outcome = await publish(summary)
    ctx.state.set("phase", "done")
    return outcome


async def worker(db: str) -> None:
    say(f"worker {os.getpid()}: opening the journal, resuming anything unfinished")
    async with durable.Runtime(db) as rt:
        run = await rt.start(research, "durable execution", run_id=RUN_ID)
        say(f"  RESULT {await run.result()}")


def spawn(db: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", db], stdout=subprocess.PIPE, text=True, env=env
    )


async def progress(db: str) -> str:
    async with durable.Runtime(db, recover=False) as client:
        try:
            state = await client.get_state(RUN_ID)
        except durable.RunNotFound:
            return "not started yet"
        children = await client.list_runs(parent=RUN_ID)
        done = sum(1 for child in children if child.status is durable.RunStatus.COMPLETED)
        return f"{state.get('phase', 'starting')}; {done} of {len(SOURCES)} sources read"


async def answer(db: str) -> str:
    async with durable.Runtime(db, recover=False) as client:
        question = await client.wait_for_question(RUN_ID, timeout=60)
        say(f"== The agent asks: {question.question}")
        await client.respond(RUN_ID, "yes")
        say("== Answered: yes")
        result: str = await client.handle(RUN_ID).result(timeout=60)
        say("\nChild runs:")
        for child in sorted(await client.list_runs(parent=RUN_ID), key=lambda c: c.run_id):
            say(f"  {child.run_id}  {child.status!s:<9}  {child.output}")
        return result


async def children(db: str) -> list[durable.RunInfo]:
    async with durable.Runtime(db, recover=False) as client:
        return await client.list_runs(parent=RUN_ID)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "agents.db")
        say("== Worker 1: start the research agent")
        first = spawn(db)
        assert first.stdout is not None
        for line in first.stdout:
            print(line, end="")
            if line.startswith("worker"):
                break
        # Somewhere in the fan-out, the summary or the wait: SIGKILL, no goodbye.
        kill_after = random.uniform(0.2, 1.4)
        try:
            before, _ = first.communicate(timeout=kill_after)
        except subprocess.TimeoutExpired:
            first.send_signal(signal.SIGKILL)
            before, _ = first.communicate()
        print(before, end="")
        say(f"== SIGKILL after {kill_after:.2f}s; the agent was at: {asyncio.run(progress(db))}\n")

        say("== Worker 2: a new process opens the same journal")
        second = spawn(db)
        result = asyncio.run(answer(db))
        after, _ = second.communicate(timeout=60)
        say("\nWorker 2 printed:")
        print(after, end="")
        if second.returncode != 0 or not result.startswith("published"):
            sys.exit(f"UNEXPECTED: worker 2 exited {second.returncode}, result {result!r}")
        say(f"\nThe agent's result: {result}")
        # A step worker 2 ran afresh (attempt 1) must not have been started by worker 1.
        fresh = {line.split(" attempt")[0] for line in after.splitlines() if "attempt 1" in line}
        again = [step for step in fresh if step in before]
        if again or len(asyncio.run(children(db))) != len(SOURCES):
            sys.exit(f"UNEXPECTED: run again from scratch: {again}")
        say(
            "No step that had started before the kill started afresh (an interrupted one ran"
            " again as attempt 2, knowing the first never finished), and no child was started"
            " twice."
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        asyncio.run(worker(sys.argv[2]))
    else:
        main()
