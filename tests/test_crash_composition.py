"""Children, events between runs and patches across SIGKILLed real processes."""

from __future__ import annotations

from pathlib import Path

import pytest

import durable

from . import child
from .processes import (
    finish,
    journal_value,
    lines,
    sigkill,
    spawn,
    spawn_worker,
    wait_for_line,
    wait_for_status,
)


def kid_starts(effects: Path) -> list[str]:
    return [line for line in lines(effects) if line.startswith("start kid")]


def test_a_parent_killed_while_its_child_runs_awaits_the_same_child(
    db: Path, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    proc = spawn(str(db), "family", str(effects), block="kid")
    wait_for_line(effects, "start kid 1", proc)
    sigkill(proc)

    proc = spawn(str(db), "family", str(effects))
    assert wait_for_line(effects, "result", proc).startswith("result 'kid-done 7'")
    finish(proc)
    starts = kid_starts(effects)
    assert len(starts) == 2 and all("run=run-family.0 " in line for line in starts)
    assert "gated_not_completed" in starts[1]  # the same child's step, interrupted once
    children = journal_value(db, "SELECT count(*) FROM runs WHERE parent_run_id = 'run-family'")
    assert children == 1


async def test_a_child_that_ends_while_its_parents_process_is_dead_is_noticed(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    effects = tmp_path / "effects.log"
    proc = spawn(str(db), "family", str(effects), DURABLE_ONLY="family")
    wait_for_status(db, "pending", "run-family.0")  # started, left for a runtime that runs it
    wait_for_status(db, "waiting", "run-family")
    sigkill(proc)

    monkeypatch.setattr(child, "EFFECTS", str(effects))
    async with durable.Runtime(db, workflows=[child.kid]) as rt:
        assert await rt.handle("run-family.0").result(timeout=10) == "kid-done 7"
        assert (await rt.get_run("run-family")).status is durable.RunStatus.WAITING
        told = [e for e in await rt.history("run-family") if e["kind"] == "message"]
        assert [(e["name"], e["payload"]) for e in told] == [
            ("child:run-family.0", {"status": "completed"})
        ]

    proc = spawn(str(db), "family", str(effects))
    assert wait_for_line(effects, "result", proc).startswith("result 'kid-done 7'")
    finish(proc)
    assert len(kid_starts(effects)) == 1


async def test_a_sender_killed_right_after_send_event_delivers_it_once(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    effects = tmp_path / "effects.log"
    async with durable.Runtime(db, recover=False) as client:
        await client.start(child.note_taker, run_id="notes")
    proc = spawn(str(db), "sender", str(effects), block="third")
    wait_for_line(effects, "start third 1", proc)
    sigkill(proc)

    proc = spawn(str(db), "sender", str(effects))
    assert wait_for_line(effects, "result", proc).startswith("result 'sent'")
    finish(proc)
    monkeypatch.setattr(child, "EFFECTS", str(effects))
    async with durable.Runtime(db) as rt:
        await rt.send_event("notes", "note", "second")
        assert await rt.handle("notes").result(timeout=10) == ["from the sender", "second"]
        notes = [e for e in await rt.history("notes") if e["kind"] == "message"]
        assert [e["payload"] for e in notes] == ["from the sender", "second"]


async def test_patched_keeps_runs_in_flight_on_their_branch_across_a_deploy(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code runs A past the patch point and C up to it; new code then replays A on the
    old branch, and takes the new one for C (it reaches the call under new code) and B."""
    effects = tmp_path / "effects.log"
    monkeypatch.setenv("PATCH_CODE", "old")
    old = spawn_worker(db, effects)
    async with durable.Runtime(db, recover=False) as client:
        for run_id in ("A", "C"):
            await client.start(child.versioned, run_id=run_id)
        wait_for_status(db, "waiting", "C")
        await client.send_event("A", "go")

        async def past_the_patch_point() -> bool:
            return any(e["name"] == "finish" for e in await client.history("A"))

        from .helpers import until

        await until(past_the_patch_point)
        sigkill(old)  # type: ignore[arg-type]

        monkeypatch.setenv("PATCH_CODE", "new")
        new = spawn_worker(db, effects)
        try:
            await client.start(child.versioned, run_id="B")
            for run_id in ("B", "C"):
                await client.send_event(run_id, "go")
            for run_id in ("A", "B", "C"):
                await client.send_event(run_id, "finish")
            results = {r: await client.handle(r).result(timeout=30) for r in ("A", "B", "C")}
            assert results == {"A": "old", "B": "new", "C": "new"}
            for run_id, patched in (("A", False), ("B", True), ("C", True)):
                kinds = [e["kind"] for e in await client.history(run_id)]
                assert ("patch.applied" in kinds) is patched, run_id
        finally:
            new.terminate()
            new.communicate(timeout=30)
