"""The Store protocol's conformance suite: every backend must pass it as it is.

A backend added later runs these by joining the ``backend`` parameter in conftest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from durable.errors import DuplicateInQueue, RunNotFound
from durable.journal.records import (
    Expect,
    LeaseLost,
    NewEvent,
    QueueLimits,
    RunEnded,
    RunRecord,
    RunUpdate,
    WaitAnswered,
    claim_of,
)
from durable.store import open_store
from durable.store.ports import Store, WriteChain


@pytest_asyncio.fixture
async def store(db: Path | str) -> AsyncIterator[Store]:
    opened = open_store(db, "normal", None, 0.05)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def run(
    run_id: str, owner: str | None = None, workflow: str = "wf", created: float = 0.0
) -> RunRecord:
    status = "pending" if owner is None else "running"
    return RunRecord(
        run_id, workflow, "1", status, "{}", "d", None, None, owner, None, created, created
    )


def step(run_id: str, position: int, kind: str = "step.started", payload: str = "{}") -> NewEvent:
    return NewEvent(run_id, position, kind, f"s{position}", payload, 1.0)


def message(run_id: str, name: str, payload: str = "1") -> NewEvent:
    return NewEvent(run_id, None, "message", name, payload, 1.0)


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


def child(run_id: str, parent: str, owner: str | None = "me") -> RunRecord:
    record = run(run_id, owner)
    record.parent_run_id = parent
    return record


async def test_a_childs_end_leaves_its_parent_a_message_in_the_same_write(store: Store) -> None:
    await store.create_run(run("p", "me"))
    await store.create_run(child("p.0", "p"))
    await store.create_run(child("p.1", "p"))
    await store.create_run(run("alone", "me"))
    assert [r.run_id for r in await store.list_runs(parent="p")] == ["p.0", "p.1"]
    assert (await store.get_run("p.0")).parent_run_id == "p"  # type: ignore[union-attr]
    cursor = await store.last_seq()
    await store.append("p.0", [], RunUpdate(2.0, status="completed", output="1"), claim="me@0")
    await store.append("p.1", [], RunUpdate(2.0, status="running"), claim="me@0")  # not an end
    await store.append("alone", [], RunUpdate(2.0, status="failed", error="{}"), claim="me@0")
    told = await store.changes_since(cursor)
    assert [(e.run_id, e.kind, e.name, e.payload) for e in told] == [
        ("p", "message", "child:p.0", '{"status":"completed"}')
    ]


async def test_a_cancel_ends_the_run_and_its_unfinished_descendants_at_once(
    store: Store,
) -> None:
    await store.create_run(run("p", "me"))
    await store.create_run(child("p.0", "p"))
    await store.create_run(child("p.0.0", "p.0", owner=None))
    await store.create_run(child("p.1", "p"))
    await store.append("p.1", [], RunUpdate(2.0, status="completed", output="1"), claim="me@0")
    assert await store.cancel("p", 3.0) == ["p", "p.0", "p.0.0"]
    statuses = {r.run_id: r.status for r in await store.list_runs(limit=None)}
    assert statuses == {
        "p": "cancelled",
        "p.0": "cancelled",
        "p.0.0": "cancelled",
        "p.1": "completed",
    }
    journals = await store.load_events(["p", "p.0", "p.0.0"])
    assert [e.kind for e in journals["p.0.0"]] == ["run.cancel"]
    with pytest.raises(RunEnded):  # the owner's next write learns it is over
        await store.append("p.0", [step("p.0", 0)], claim="me@0")
    with pytest.raises(RunEnded):
        await store.cancel("p", 4.0)
    with pytest.raises(RunNotFound):
        await store.cancel("nope", 4.0)


async def test_a_deadline_fails_the_run_and_cancels_its_descendants(store: Store) -> None:
    await store.create_run(run("p", "me"))
    await store.create_run(child("p.0", "p"))
    assert await store.cancel("p", 3.0, error='{"code":"WORKFLOW_TIMEOUT"}') == ["p", "p.0"]
    root = await store.get_run("p")
    assert root is not None and (root.status, root.error) == (
        "failed",
        '{"code":"WORKFLOW_TIMEOUT"}',
    )
    assert (await store.get_run("p.0")).status == "cancelled"  # type: ignore[union-attr]


async def test_a_keyed_message_is_kept_once_per_run(store: Store) -> None:
    await store.create_run(run("a", "me"))
    await store.create_run(run("b", "me"))
    first = await store.send(message("a", "note"), Expect(), key="k1")
    assert first is not None
    assert await store.send(message("a", "note", "2"), Expect(), key="k1") is None
    assert await store.send(message("b", "note"), Expect(), key="k1") is not None  # another run
    assert await store.send(message("a", "note", "3"), Expect()) is not None  # no key
    payloads = [e.payload for e in (await store.load_events(["a"]))["a"]]
    assert payloads == ["1", "3"]
    with pytest.raises(RunNotFound):
        await store.send(message("nope", "note"), Expect(), key="k2")
    # A refused send keeps no key: the same key is free once the run exists.
    await store.create_run(run("nope", "me"))
    assert await store.send(message("nope", "note"), Expect(), key="k2") is not None
    await store.append("a", [], RunUpdate(2.0, status="completed"), claim="me@0")
    with pytest.raises(RunEnded):
        await store.send(message("a", "note"), Expect(), key="k3")
    assert await store.send(message("a", "note"), Expect(), key="k1") is None  # delivered before


async def test_parent_and_deadline_are_stored_with_the_run(store: Store) -> None:
    record = child("c", "p")
    record.deadline = 42.5
    await store.create_run(record)
    stored = await store.get_run("c")
    assert stored is not None and (stored.parent_run_id, stored.deadline) == ("p", 42.5)
    (claimed,) = await store.claim("me", 100.0, 1.0, limit=10, run_ids=["c"])
    assert (claimed.parent_run_id, claimed.deadline) == ("p", 42.5)


def queued(run_id: str, queue: str = "q", priority: int = 0, created: float = 0.0) -> RunRecord:
    record = run(run_id, created=created)
    record.status, record.queue, record.priority = "queued", queue, priority
    return record


async def test_admission_takes_queued_runs_by_priority_then_age_within_the_limits(
    store: Store,
) -> None:
    for run_id, priority, created in [("late", 5, 1.0), ("b", 0, 2.0), ("a", 0, 1.0)]:
        await store.create_run(queued(run_id, priority=priority, created=created))
    assert await store.claim("me", 100.0, 10.0, limit=10) == []  # queued runs are not claimed
    limits = QueueLimits("q", concurrency=2)
    first = await store.admit("me", 100.0, 10.0, [limits], limit=10)
    assert [(r.run_id, r.status, r.owner) for r in first.runs] == [
        ("a", "pending", "me"),
        ("b", "pending", "me"),
    ]
    assert await store.queue_counts("q") == (1, 2)
    assert (await store.admit("other", 100.0, 10.0, [limits], limit=10)).runs == []  # full
    await store.append("a", [], RunUpdate(11.0, status="completed"), claim="me@1")  # admitted
    second = await store.admit("other", 100.0, 11.0, [limits], limit=10)
    assert [r.run_id for r in second.runs] == ["late"]
    assert await store.queue_names() == ["q"]


async def test_an_admission_asked_for_behind_runs_ends_sees_their_slots_free(
    store: Store,
) -> None:
    """Asked for before the ends commit (a queued run ending hands its slot on), the
    admission comes after them: it takes the next run in their place."""
    for i in range(4):
        await store.create_run(queued(f"r{i}", created=float(i)))
    limits = QueueLimits("q", concurrency=3)
    held = await store.admit("me", 100.0, 10.0, [limits], limit=10)
    assert [r.run_id for r in held.runs] == ["r0", "r1", "r2"]
    ends = [
        store.append(f"r{i}", [], RunUpdate(11.0, status="completed"), claim="me@1")
        for i in range(3)  # admitted: their first claim
    ]
    first = store.admit("me", 100.0, 11.0, [limits], limit=10)
    again = store.admit("me", 100.0, 11.0, [limits], limit=10)
    for end in ends:
        await end
    taken = [r.run_id for r in (await first).runs + (await again).runs]
    assert taken == ["r3"]  # once, by one of the two
    assert await store.queue_counts("q") == (0, 1)


async def test_admission_holds_per_runtime_and_rate_limits(store: Store) -> None:
    for i in range(4):
        await store.create_run(queued(f"r{i}", created=float(i)))
    per_runtime = QueueLimits("q", per_runtime=1)
    assert len((await store.admit("me", 100.0, 10.0, [per_runtime], limit=10)).runs) == 1
    assert (await store.admit("me", 100.0, 10.0, [per_runtime], limit=10)).runs == []
    assert len((await store.admit("you", 100.0, 10.0, [per_runtime], limit=10)).runs) == 1
    rated = QueueLimits("q", rate=(2, 30.0))  # two admitted at 10.0 already
    held = await store.admit("me", 100.0, 20.0, [rated], limit=10)
    assert held.runs == [] and held.retry_at == 40.0  # when the first leaves the window
    assert len((await store.admit("me", 100.0, 40.5, [rated], limit=10)).runs) == 2


async def test_admission_takes_only_the_workflows_asked_for(store: Store) -> None:
    record = queued("theirs")
    record.workflow = "elsewhere"
    await store.create_run(record)
    limits = [QueueLimits("q")]
    assert (
        await store.admit("me", 100.0, 1.0, limits, limit=10, workflows=[("wf", "1")])
    ).runs == []
    assert len((await store.admit("me", 100.0, 1.0, limits, limit=10)).runs) == 1


async def test_a_dead_runtimes_queued_runs_go_back_to_their_queue(store: Store) -> None:
    await store.create_run(queued("held"))
    await store.admit("dead", 5.0, 1.0, [QueueLimits("q", concurrency=1)], limit=10)
    assert await store.queue_counts("q") == (0, 1)
    # The lease of "dead" lapsed: a claim gives its run back to the queue, not to itself.
    assert await store.claim("me", 100.0, 10.0, limit=10) == []
    assert await store.queue_counts("q") == (1, 0)
    (again,) = (
        await store.admit("me", 100.0, 10.0, [QueueLimits("q", concurrency=1)], limit=10)
    ).runs
    assert again.run_id == "held"


async def test_a_dedup_key_is_unique_among_a_queues_unfinished_runs(store: Store) -> None:
    first = queued("one")
    first.dedup_key = "k"
    await store.create_run(first)
    second = queued("two")
    second.dedup_key = "k"
    with pytest.raises(DuplicateInQueue) as refused:
        await store.create_run(second)
    assert refused.value.run_id == "one"
    assert (await store.create_run(first))[1] is False  # the same run again is no duplicate
    await store.append("one", [], RunUpdate(2.0, status="cancelled"))
    assert (await store.create_run(second))[1] is True


async def test_schedules_are_kept_with_their_first_sighting_and_latest_tick(store: Store) -> None:
    seen = await store.see_schedule("wf", "0 9 * * *", "UTC", 100.0)
    assert (seen.first_seen, seen.last_tick) == (100.0, None)
    again = await store.see_schedule("wf", "0 10 * * *", "UTC", 200.0)
    assert (again.cron, again.first_seen) == ("0 10 * * *", 100.0)
    await store.note_tick("wf", 300.0)
    await store.note_tick("wf", 250.0)
    (schedule,) = await store.schedules()
    assert (schedule.workflow, schedule.last_tick) == ("wf", 300.0)
