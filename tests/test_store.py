"""The Store protocol's conformance suite (``store_suite.py``): runs, their journals,
claims and leases, listing, the change feed and pruning. Every backend must pass it
as it is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from durable.errors import RunNotFound
from durable.journal.records import (
    Expect,
    LeaseLost,
    NewEvent,
    RunEnded,
    RunUpdate,
    WaitAnswered,
    claim_of,
)
from durable.store import open_store
from durable.store.ports import Store, WriteChain

from .store_suite import child, message, run, step, store

__all__ = ["store"]  # the fixture, shared with the suite's other modules


async def test_a_run_is_created_once(store: Store) -> None:
    first, created = await store.create_run(run("a", "me"))
    again, created_again = await store.create_run(run("a", "other"))
    assert created and not created_again
    assert again.owner == "me" and first.run_id == again.run_id == "a"
    assert (await store.get_run("a")) is not None and await store.get_run("b") is None


async def test_events_are_numbered_per_run_and_messages_follow_every_earlier_message(
    store: Store,
) -> None:
    await store.create_run(run("a", "me"))
    await store.create_run(run("b", "me"))
    assert await store.append("a", [step("a", 0), step("a", 1)], claim="me@0") == [1, 2]
    assert await store.append("b", [step("b", 0)], claim="me@0") == [1]
    cursor = await store.last_seq()
    (m1,) = await store.append("b", [message("b", "x")], expect=Expect())
    (m2,) = await store.append("a", [message("a", "y")], expect=Expect())
    assert m2 > m1 > cursor
    changes = await store.changes_since(cursor)
    assert [(e.run_id, e.name) for e in changes] == [("b", "x"), ("a", "y")]
    assert await store.append("a", [step("a", 2)], claim="me@0") == [m2 + 1]
    journals = await store.load_events(["a", "b", "c"])
    assert [e.seq for e in journals["a"]] == [1, 2, m2, m2 + 1]
    assert journals["c"] == []


async def test_an_events_fields_come_back_as_they_were_written(store: Store) -> None:
    """Whatever way a backend sends a write (PostgreSQL sends an owner's progress as
    one JSON document), the text, names and times read back are the ones written."""
    await store.create_run(run("a", "me"))
    payload = '{"s":"quote \\" backslash \\\\ é 😀 \\n \\u0000 \\ud83d\\ude00"}'
    name = 'naïve "name" \\ 😀'
    events = [
        NewEvent("a", 0, "step.completed", name, payload, 1234567890.123456),
        NewEvent("a", 1, "step.started", "s1", "{}", 0.1 + 0.2),
    ]
    assert await store.append("a", events, claim="me@0") == [1, 2]
    read = (await store.load_events(["a"]))["a"]
    assert [(e.position, e.kind, e.name, e.payload, e.created_at) for e in read] == [
        (event.position, event.kind, event.name, event.payload, event.created_at)
        for event in events
    ]


async def test_a_write_by_a_runtime_that_does_not_own_the_run_writes_nothing(
    store: Store,
) -> None:
    await store.create_run(run("a", "them"))
    with pytest.raises(LeaseLost, match="'them@0'"):
        await store.append("a", [step("a", 0)], RunUpdate(1.0, status="completed"), claim="me@0")
    record = await store.get_run("a")
    assert record is not None and record.status == "running"
    assert (await store.load_events(["a"]))["a"] == []


async def test_writes_to_an_ended_run_are_refused_and_write_nothing(store: Store) -> None:
    await store.create_run(run("a", "me"))
    await store.append("a", [message("a", "cancel")], RunUpdate(1.0, status="cancelled"))
    with pytest.raises(RunEnded) as ended:
        await store.append("a", [step("a", 0)], claim="me@0")
    assert ended.value.status == "cancelled"
    with pytest.raises(RunEnded):
        await store.append("a", [message("a", "late")], expect=Expect())
    with pytest.raises(RunNotFound):
        await store.append("nope", [message("nope", "x")], expect=Expect())
    assert [e.name for e in (await store.load_events(["a"]))["a"]] == ["cancel"]


async def test_an_answer_is_refused_once_the_wait_is_answered(store: Store) -> None:
    await store.create_run(run("a", "me"))
    await store.append("a", [NewEvent("a", 0, "wait.started", "user:0", "{}", 1.0)], claim="me@0")
    pending = Expect(pending_wait="user:0")
    (answer,) = await store.append("a", [message("a", "user:0", '"yes"')], expect=pending)
    with pytest.raises(WaitAnswered):  # answered, not yet consumed
        await store.append("a", [message("a", "user:0", '"no"')], expect=pending)
    consumed = f'{{"message": {answer}, "value": "yes"}}'
    await store.append(
        "a", [NewEvent("a", 0, "wait.completed", "user:0", consumed, 1.0)], claim="me@0"
    )
    with pytest.raises(WaitAnswered):  # consumed
        await store.append("a", [message("a", "user:0", '"no"')], expect=pending)
    with pytest.raises(WaitAnswered):  # never asked
        await store.append("a", [message("a", "user:9")], expect=Expect(pending_wait="user:9"))


async def test_a_failed_write_stops_its_chain_and_no_other(store: Store) -> None:
    await store.create_run(run("a", "me"))
    await store.create_run(run("b", "me"))
    chain_a, chain_b = WriteChain(), WriteChain()
    outcomes = await asyncio.gather(
        store.append("a", [step("a", 0)], claim="me@0", chain=chain_a),
        store.append("a", [step("a", 1)], expect=Expect(pending_wait="x"), chain=chain_a),
        store.append("b", [step("b", 0)], claim="me@0", chain=chain_b),
        store.append("a", [step("a", 2)], claim="me@0", chain=chain_a),
        return_exceptions=True,
    )
    assert outcomes[0] == [1] and outcomes[2] == [1]
    assert isinstance(outcomes[1], WaitAnswered) and isinstance(outcomes[3], WaitAnswered)
    journals = await store.load_events(["a", "b"])
    assert [e.position for e in journals["a"]] == [0] and len(journals["b"]) == 1


async def test_writes_of_a_chain_after_a_refused_one_are_refused_in_one_batch(
    store: Store,
) -> None:
    await store.create_run(run("a", "other"))
    await store.create_run(run("b", "me"))
    chain = WriteChain()
    outcomes = await asyncio.gather(
        *(store.append("a", [step("a", i)], claim="me@0", chain=chain) for i in range(3)),
        store.append("b", [step("b", 0)], claim="me@0", chain=WriteChain()),
        return_exceptions=True,
    )
    assert [type(outcome) for outcome in outcomes[:3]] == [LeaseLost] * 3
    assert outcomes[3] == [1]
    journals = await store.load_events(["a", "b"])
    assert journals["a"] == [] and len(journals["b"]) == 1


async def test_free_runs_are_shared_between_the_runtimes_that_hold_a_lease(
    store: Store,
) -> None:
    for i in range(10):
        await store.create_run(run(f"r{i}", created=float(i)))
    first = await store.claim("a", 100.0, 10.0, limit=1000)
    assert len(first) == 10  # alone: all of them
    # a lets them go; b and c hold leases: c takes half of the 10, then b the other half
    # (what brings it to half of the runs held and free), not half of what is left.
    await store.release("a")
    await store.claim("b", 100.0, 10.0, limit=0, run_ids=[])
    taken_c = await store.claim("c", 100.0, 10.0, limit=1000)
    taken_b = await store.claim("b", 100.0, 10.0, limit=1000)
    assert len(taken_c) == 5 and len(taken_b) == 5
    assert not {r.run_id for r in taken_c} & {r.run_id for r in taken_b}


async def test_every_claim_begins_an_epoch_and_refuses_writes_made_under_an_older_one(
    store: Store,
) -> None:
    """The same runtime taking a run back after another held it must not let its old
    copy write: the claim, not the owner, is what a write is checked against."""
    await store.create_run(run("r", "a"))
    assert await store.append("r", [step("r", 0)], claim=claim_of("a", 0)) == [1]
    (taken,) = await store.claim("b", 100.0, 10.0, limit=10, dead_owners=["a"])
    (back,) = await store.claim("a", 100.0, 10.0, limit=10, dead_owners=["b"])
    assert (taken.epoch, back.epoch) == (1, 2)
    for stale in ("a", 0), ("b", 1):
        with pytest.raises(LeaseLost, match="claimed again"):
            await store.append("r", [step("r", 1)], claim=claim_of(*stale))
        with pytest.raises(LeaseLost):
            await store.append("r", [], RunUpdate(2.0, status="completed"), claim=claim_of(*stale))
    assert await store.append("r", [step("r", 1)], claim=claim_of("a", 2)) == [2]
    assert [r.epoch for r in await store.claim("a", 100.0, 10.0, limit=10)] == [3]
    assert (await store.get_run("r")).epoch == 3  # type: ignore[union-attr]


async def test_a_claim_skips_the_runs_it_is_told_to(store: Store) -> None:
    await store.create_run(run("mine", "a"))
    await store.create_run(run("free"))
    taken = await store.claim("a", 100.0, 10.0, limit=10, skip=["mine"])
    assert [r.run_id for r in taken] == ["free"]
    assert (await store.get_run("mine")).epoch == 0  # type: ignore[union-attr]


async def test_a_claim_takes_no_more_than_its_limit_nor_other_workflows(store: Store) -> None:
    for i in range(6):
        await store.create_run(run(f"r{i}", workflow="wf" if i % 2 else "other"))
    taken = await store.claim("a", 100.0, 10.0, limit=2, workflows=[("wf", "1")])
    assert len(taken) == 2 and {r.workflow for r in taken} == {"wf"}
    mine = await store.claim("a", 100.0, 10.0, limit=0, workflows=[("wf", "1")])
    assert {r.run_id for r in mine} == {r.run_id for r in taken}  # its own, always


async def test_runs_are_taken_over_only_once_their_lease_lapses_or_their_owner_died(
    store: Store,
) -> None:
    await store.create_run(run("r1"))
    await store.create_run(run("r2"))
    assert len(await store.claim("a", 100.0, 10.0, limit=10)) == 2
    assert await store.claim("b", 200.0, 50.0, limit=10) == []
    assert len(await store.claim("b", 200.0, 50.0, limit=10, dead_owners=["a"])) == 2
    assert await store.claim("c", 300.0, 150.0, limit=10, include_own=False) == []
    assert len(await store.claim("c", 300.0, 250.0, limit=10)) == 2  # b's lapsed at 200
    held = await store.renew("b", 400.0, 260.0)
    assert held == set()  # it lapsed: it learns it holds nothing now
    assert await store.renew("c", 400.0, 260.0) is None
    assert set(await store.owners()) == {"b", "c"}


async def test_runs_are_listed_newest_first_and_by_status_and_workflow(store: Store) -> None:
    await store.create_run(run("old", "me", created=1.0))
    await store.create_run(run("new", "me", workflow="other", created=2.0))
    await store.append("old", [], RunUpdate(3.0, status="completed"), claim="me@0")
    assert [r.run_id for r in await store.list_runs()] == ["new", "old"]
    assert [r.run_id for r in await store.list_runs(limit=None, unfinished=True)] == ["new"]
    assert [r.run_id for r in await store.list_runs(status="completed")] == ["old"]
    assert [r.run_id for r in await store.list_runs(workflow="other")] == ["new"]
    assert len(await store.list_runs(limit=1)) == 1


async def test_superseding_keeps_the_events_and_flags_them(store: Store) -> None:
    await store.create_run(run("a", "me"))
    await store.append("a", [step("a", 0), step("a", 1)], claim="me@0")
    await store.append("a", [], RunUpdate(2.0, status="completed", output="1"), claim="me@0")
    update = RunUpdate(3.0, status="pending", reset_result=True, release=True, only_if_active=False)
    marker = NewEvent("a", None, "run.rerun", "rerun", '{"position": 1}', 3.0)
    assert await store.supersede("a", 1, update, [marker]) == 1
    events = (await store.load_events(["a"]))["a"]
    assert [(e.position, e.superseded) for e in events] == [(0, False), (1, True), (None, False)]
    record = await store.get_run("a")
    assert record is not None and (record.status, record.output, record.owner) == (
        "pending",
        None,
        None,
    )


async def test_the_change_feed_hears_another_connection(db: Path | str, store: Store) -> None:
    other = open_store(db, "normal", None, 0.05)
    await other.open()
    try:
        await store.wait_for_change(0.2)  # whatever opening the other store stirred
        waiting = asyncio.create_task(store.wait_for_change(10.0))
        await asyncio.sleep(0.1)
        await other.create_run(run("a"))
        assert await asyncio.wait_for(waiting, 5) is True
    finally:
        await other.close()


async def test_the_change_feed_does_not_hear_the_stores_own_commits(store: Store) -> None:
    """What a store writes is known where it was written (a result() awaited there is
    told at once): heard again from the feed, it would wake every waiter."""
    await store.wait_for_change(0.2)  # whatever opening the store stirred
    waiting = asyncio.create_task(store.wait_for_change(0.5))
    await store.create_run(run("a"))
    await store.append("a", [], RunUpdate(2.0, status="completed", output="1"))
    assert await waiting is False


async def test_the_change_feed_hears_an_owner_publish_its_state(
    db: Path | str, store: Store
) -> None:
    """An owner's own progress is not announced, but the state it publishes is: others
    may be waiting for it (rt.wait_state)."""
    other = open_store(db, "normal", None, 0.05)
    await other.open()
    try:
        await other.create_run(run("a", "me"))
        await store.wait_for_change(0.2)  # whatever opening the other store stirred
        waiting = asyncio.create_task(store.wait_for_change(1.0))
        await asyncio.sleep(0.1)
        await other.append("a", [step("a", 0, "state.set", '{"value":1}')], claim="me@0")
        assert await waiting is True
    finally:
        await other.close()


async def test_a_release_hands_back_the_runs_it_names_as_owned_by_no_one(store: Store) -> None:
    await store.create_run(run("stopped", "me"))
    await store.create_run(run("parked", "me"))
    await store.claim("me", 100.0, 10.0, limit=10)
    await store.release("me", ["stopped"])
    stopped, parked = await store.get_run("stopped"), await store.get_run("parked")
    assert stopped is not None and stopped.owner is None
    assert parked is not None and parked.owner == "me"  # free all the same: no lease
    assert {r.run_id for r in await store.claim("other", 100.0, 10.0, limit=10)} == {
        "stopped",
        "parked",
    }


async def test_runs_are_paged_with_a_cursor_and_bounded_by_creation_time(store: Store) -> None:
    for i in range(7):  # two runs per moment: ties are broken by run id
        await store.create_run(run(f"r{i}", created=float(i // 2)))
    pages, cursor = [], None
    while True:
        page = await store.list_runs(limit=3, after=cursor)
        if not page:
            break
        pages.append([r.run_id for r in page])
        cursor = (page[-1].created_at, page[-1].run_id)
    assert pages == [["r6", "r4", "r5"], ["r2", "r3", "r0"], ["r1"]]
    bounded = await store.list_runs(since=1.0, until=3.0, limit=None)
    assert [r.run_id for r in bounded] == ["r4", "r5", "r2", "r3"]


async def test_prune_deletes_only_runs_that_ended_before_the_cutoff(store: Store) -> None:
    for run_id in ("old-done", "old-open", "new-done"):
        await store.create_run(run(run_id, "me"))
        await store.append(run_id, [step(run_id, 0)], claim="me@0")
    ended = RunUpdate(5.0, status="completed", output="1")
    await store.append("old-done", [], ended, claim="me@0")
    await store.append("new-done", [], RunUpdate(50.0, status="completed"), claim="me@0")
    await store.append("old-open", [], RunUpdate(5.0, status="sleeping"), claim="me@0")
    assert await store.prune(10.0, limit=100) == 1
    assert await store.get_run("old-done") is None
    assert (await store.load_events(["old-done"]))["old-done"] == []
    left = {r.run_id for r in await store.list_runs(limit=None)}
    assert left == {"old-open", "new-done"}
    assert await store.prune(10.0, limit=100) == 0


async def test_prune_works_in_batches_oldest_first(store: Store) -> None:
    for i in range(5):
        await store.create_run(run(f"p{i}", "me", created=float(i)))
        await store.append(f"p{i}", [], RunUpdate(float(i), status="failed"), claim="me@0")
    assert await store.prune(100.0, limit=2) == 2
    assert [r.run_id for r in await store.list_runs(limit=None)] == ["p4", "p3", "p2"]


async def test_pruning_the_newest_message_never_numbers_a_new_one_below_a_cursor(
    store: Store,
) -> None:
    for run_id in ("kept", "gone"):
        await store.create_run(run(run_id, "me"))
    await store.append("kept", [message("kept", "x")], expect=Expect())
    await store.append("gone", [message("gone", "y")], expect=Expect())
    cursor = await store.last_seq()  # a runtime following the feed has read up to here
    await store.append("gone", [], RunUpdate(1.0, status="completed"), claim="me@0")
    assert await store.prune(2.0, limit=10) == 1
    (later,) = await store.append("kept", [message("kept", "z")], expect=Expect())
    assert later > cursor
    assert [e.name for e in await store.changes_since(cursor)] == ["z"]


async def test_a_run_tree_is_read_in_one_query(store: Store) -> None:
    await store.create_run(run("top"))
    await store.create_run(child("top.0", "top"))
    await store.create_run(child("top.1", "top"))
    await store.create_run(child("top.0.0", "top.0"))
    await store.create_run(run("other"))
    assert await store.run_tree("top") == {
        "top": None,
        "top.0": "top",
        "top.1": "top",
        "top.0.0": "top.0",
    }
    assert await store.run_tree("top.0") == {"top.0": None, "top.0.0": "top.0"}
    assert await store.run_tree("missing") == {}


async def test_a_runs_spend_is_read_apart_from_its_journal(store: Store) -> None:
    await store.create_run(run("a", "me"))
    await store.create_run(run("b", "me"))
    charge = NewEvent("a", None, "budget.charged", "s0", '{"position":0,"usd":1.0}', 1.0)
    raised = NewEvent("b", None, "budget.raised", "budget", '{"usd":5.0}', 1.0)
    await store.append("a", [step("a", 0), charge, message("a", "x")], claim="me@0")
    await store.append("b", [raised], expect=Expect())
    found = await store.spend_events({"a": 0, "b": 0, "c": 0})
    assert {run_id: [e.kind for e in events] for run_id, events in found.items()} == {
        "a": ["budget.charged"],
        "b": ["budget.raised"],
        "c": [],
    }
    (read,) = found["a"]
    again = NewEvent("a", None, "budget.charged", "s1", '{"position":1,"usd":2.0}', 2.0)
    await store.append("a", [again], claim="me@0")
    later = await store.spend_events({"a": read.seq, "b": found["b"][0].seq})
    assert [e.payload for e in later["a"]] == [again.payload]
    assert later["b"] == []
