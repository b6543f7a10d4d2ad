"""The Store protocol's conformance suite (``store_suite.py``): runs together (children,
cancels, deadlines, keyed messages), queues and their admission, and schedules.
Every backend must pass it as it is.
"""

from __future__ import annotations

import pytest

from durable.errors import DuplicateInQueue, RunNotFound
from durable.journal.records import Expect, QueueLimits, RunEnded, RunUpdate
from durable.store.ports import Store

from .store_suite import child, message, queued, run, step, store

__all__ = ["store"]  # the fixture, shared with the suite's other modules


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
