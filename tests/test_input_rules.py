"""Input is checked where it enters, with an error naming the rule: run ids and names
(non-empty, at most 255 characters, no control characters or lone surrogates) and
arguments of the types the signature says — never a database driver's error later."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable

from .helpers import status_is
from .processes import cli
from .test_server import serve, wait_for_question

RULE = "at most 255 characters without control characters or lone surrogates"
BAD_IDS: list[Any] = [123, b"id", "", "a\x00b", "a\ud800b", "x" * 1_000_000, "a\nb", "x" * 256]


@durable.workflow(name="rules.ask")
async def ask(ctx: durable.WorkflowContext, text: str = "t") -> str:
    answer = await ctx.wait_for_user("Go?")
    return f"{text}{answer}"


@durable.workflow(name="rules.misuse")
async def misuse(ctx: durable.WorkflowContext, which: str) -> str:
    bad = "bad\x00name"
    if which == "event":
        await ctx.wait_for_event(bad)
    elif which == "send":
        await ctx.send_event(ctx.run_id, bad)
    elif which == "stream":
        await ctx.write_stream(bad, 1)
    elif which == "state":
        ctx.state.set(bad, 1)
    elif which == "step":
        await ctx.step(bad, str, 1)
    elif which == "child":
        await ctx.start_child(ask, run_id=bad)
    return "unreachable"


def _calls(rt: durable.Runtime, run_id: Any) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Every entry point that takes a run id, called with ``run_id``."""

    async def handle() -> None:
        rt.handle(run_id)

    async def stream() -> None:
        rt.read_stream(run_id, "s")

    return {
        "start": lambda: rt.start(ask, run_id=run_id),
        "start_run": lambda: rt.start_run(ask, [], {}, run_id=run_id),
        "get_run": lambda: rt.get_run(run_id),
        "handle": handle,
        "history": lambda: rt.history(run_id),
        "export": lambda: rt.export(run_id),
        "pending_waits": lambda: rt.pending_waits(run_id),
        "wait_for_question": lambda: rt.wait_for_question(run_id, timeout=1),
        "respond": lambda: rt.respond(run_id, "yes"),
        "send_event": lambda: rt.send_event(run_id, "e"),
        "cancel": lambda: rt.cancel(run_id),
        "resume": lambda: rt.resume(run_id),
        "rerun_from": lambda: rt.rerun_from(run_id, 0),
        "get_state": lambda: rt.get_state(run_id),
        "wait_state": lambda: rt.wait_state(run_id, "k", timeout=1),
        "read_stream": stream,
        "list_runs(after=)": lambda: rt.list_runs(after=run_id),
    }


async def test_every_entry_point_refuses_a_run_id_against_the_rule(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        for bad in BAD_IDS:
            for call, make in _calls(rt, bad).items():
                with pytest.raises((TypeError, ValueError), match=r"run_id|after") as refused:
                    await make()
                assert not isinstance(refused.value, durable.DurableError), call
                assert RULE in str(refused.value) or "must be a string" in str(refused.value)
        assert await rt.list_runs() == []
        # A fit id still works everywhere, 255 characters of any script included.
        fit = "é/日本-" + "x" * 250
        await rt.start(ask, run_id=fit)
        await status_is(rt, fit, "waiting")
        await rt.respond(fit, "!")
        assert await rt.handle(fit).result(timeout=10) == "t!"


async def test_names_against_the_rule_are_refused_where_they_are_given(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        await rt.start(ask, run_id="r")
        await status_is(rt, "r", "waiting")
        refused = pytest.raises((TypeError, ValueError), match=RULE)
        for name in ("", "a\x00", "a\ud800", "n" * 256):
            with refused:
                await rt.send_event("r", name)
            with refused:
                await rt.send_event("r", "e", key=name)
            with refused:
                await rt.respond("r", "yes", wait_id=name)
            with refused:
                rt.read_stream("r", name)
            with refused:
                await rt.wait_state("r", name, timeout=1)
            with refused:
                await rt.list_runs(workflow=name)
        for which in ("event", "send", "stream", "state", "step", "child"):
            with pytest.raises(durable.WorkflowFailed, match="control characters") as failed:
                await (await rt.start(misuse, which)).result(timeout=10)
            assert failed.value.error["type"] == "ValueError", which
        await rt.respond("r", "!")
        assert await rt.handle("r").result(timeout=10) == "t!"


def _decorate(**options: Any) -> None:
    async def fn(ctx: durable.WorkflowContext) -> None: ...

    durable.workflow(**options)(fn)


@pytest.mark.parametrize(
    "make",
    [
        lambda: _decorate(name=123),
        lambda: _decorate(name=""),
        lambda: _decorate(name="a\x00b"),
        lambda: _decorate(name="w" * 256),
        lambda: _decorate(name="ok", version=""),
        lambda: _decorate(name="ok", version=None),
        lambda: _decorate(name="ok", version="1\n"),
        lambda: _decorate(name="c" * 240, cron="0 9 * * *"),
        lambda: durable.step(name="s\x00"),
        lambda: durable.step(name=7),  # type: ignore[call-overload]
        lambda: durable.Queue("q\ud800"),
        lambda: durable.Queue(""),
    ],
)
def test_a_workflow_step_or_queue_name_against_the_rule_is_refused(
    make: Callable[[], object],
) -> None:
    with pytest.raises((TypeError, ValueError), match=r"must be a|at most 255 characters"):
        make()


async def test_a_refused_workflow_name_leaves_the_process_able_to_open_a_journal(
    db: Path | str,
) -> None:
    with pytest.raises(TypeError, match=r"name=\.\.\.\) must be a string"):
        _decorate(name=123)
    async with durable.Runtime(db) as rt:
        await rt.start(ask, run_id="after")
        await status_is(rt, "after", "waiting")


async def test_arguments_of_the_wrong_shape_are_refused_at_the_start(db: Path | str) -> None:
    queue = durable.Queue("rules.q")
    async with durable.Runtime(db) as rt:
        with pytest.raises(TypeError, match=r"must be a list or tuple \(args\), got str"):
            await rt.start_run(ask, "abc", {})
        with pytest.raises(TypeError, match=r"must be a dict with string keys \(kwargs\)"):
            await rt.start_run(ask, [], ["a"])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"must be a dict with string keys"):
            await rt.start_run(ask, [], {1: "a"})  # type: ignore[dict-item,unused-ignore]
        with pytest.raises(TypeError, match=r"cannot take these arguments.*ask\(ctx"):
            await rt.start_run(ask, ["a", "b", "c"], {})
        with pytest.raises(TypeError, match=r"cannot take these arguments"):
            await rt.start_run(ask, [], {"nope": 1})
        with pytest.raises(ValueError, match=f"dedup_key must be .*{RULE}"):
            await rt.start_run(ask, [], {}, queue=queue, dedup_key="k\x00")
        assert await rt.list_runs() == []
        run = await rt.start_run(ask, ("a",), {})
        await status_is(rt, run.run_id, "waiting")


def test_over_http_an_integer_beyond_64_bits_or_a_bad_name_is_a_422(db: Path | str) -> None:
    """orjson reads 2**64 as a float: the body parser refuses it, naming where it is."""
    proc, url = serve(db)
    try:
        with httpx.Client(base_url=url, timeout=30) as api:
            big = api.post("/api/workflows/child.ask_text/runs", json={"args": [2**64]})
            assert (big.status_code, big.json()["code"]) == (422, "SERIALIZATION"), big.text
            assert "18446744073709551616 at args[0]" in big.json()["message"]
            small = api.post("/api/workflows/child.ask_text/runs", json={"args": [-(2**63) - 1]})
            assert small.status_code == 422 and "args[0]" in small.json()["message"]
            assert api.get("/api/runs").json() == []
            run_id = api.post("/api/workflows/child.ask_text/runs", json={}).json()["run_id"]
            wait_for_question(api, run_id)
            refused = [
                api.post(f"/api/runs/{run_id}/events/e", json={"n": [1, 2**64]}),
                api.post(f"/api/runs/{run_id}/respond", json={"value": 2**70}),
                api.post(f"/api/runs/{run_id}/events/{'e' * 256}", json=1),
                api.post(
                    f"/api/runs/{run_id}/events/e", json=1, headers={"Idempotency-Key": "k" * 256}
                ),
                api.get("/api/runs/a%00b"),
                api.get("/api/runs/a%7Fb/history"),
                api.get(f"/api/runs/{'x' * 300}"),
                api.post(
                    "/api/workflows/child.ask_text/runs",
                    json={},
                    headers={"Idempotency-Key": "r" * 256},
                ),
                api.post("/api/workflows/child.ask_text/runs", json={"kwargs": {"nope": 1}}),
            ]
            for response in refused:
                assert response.status_code == 422, response.text
                assert response.json()["code"] in ("SERIALIZATION", "INVALID_REQUEST")
            assert "at n[1]" in refused[0].json()["message"]
            assert api.get(f"/api/runs/{run_id}/history").json()[-1]["kind"] == "wait.started"
            fine = api.post(f"/api/runs/{run_id}/respond", json={"value": 2**64 - 1})
            assert fine.status_code == 200, fine.text
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@durable.workflow(name="rules.big")
async def big(ctx: durable.WorkflowContext, n: int) -> dict[str, list[int]]:
    grown: dict[str, list[int]] = await ctx.step("grow", lambda: {"deep": [n * 2**64]})
    return grown


async def test_an_integer_beyond_64_bits_is_refused_naming_its_place(db: Path | str) -> None:
    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.SerializationError, match=r"18446744073709551616 at args\[0\]"):
            await rt.start(big, 2**64)
        with pytest.raises(durable.SerializationError, match=r"at kwargs\['n'\]"):
            await rt.start_run(big, [], {"n": -(2**63) - 1})
        assert await rt.list_runs() == []
        with pytest.raises(durable.WorkflowFailed, match=r"at deep\[0\] is beyond 64 bits"):
            await (await rt.start(big, 1)).result(timeout=10)
        await rt.start(ask, run_id="r")
        await status_is(rt, "r", "waiting")
        with pytest.raises(durable.SerializationError, match=r"at \[1\]\['x'\]"):
            await rt.send_event("r", "e", [0, {"x": 2**64}])
        with pytest.raises(durable.SerializationError, match="beyond 64 bits"):
            await rt.respond("r", 2**64)
        await rt.respond("r", 2**64 - 1)
        assert await rt.handle("r").result(timeout=10) == f"t{2**64 - 1}"


async def test_the_command_line_refuses_an_integer_beyond_64_bits(db: Path | str) -> None:
    async with durable.Runtime(db):
        pass  # the journal the command opens
    started = cli(db, "start", "child.sleeper", "[18446744073709551616]", "--module", "tests.child")
    assert started.returncode == 1, started.stderr
    assert "at [0] is beyond 64 bits" in started.stderr and "Traceback" not in started.stderr
