"""Streams read from another process: across a SIGKILLed writer, and over SSE resumed."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx

import durable

from . import child
from .helpers import until
from .processes import sigkill, spawn_worker
from .sse import next_event
from .test_server import serve
from .test_web_view import FLAGS, browser_path  # noqa: F401  (a fixture)

TOKENS = len(child.ANSWER.split(" "))


def kept_text(items: list[durable.StreamItem]) -> str:
    """What a client shows: the values, less those of retracted attempts."""
    void = {(item.position, item.attempt) for item in items if item.kind == "retract"}
    return "".join(
        item.value
        for item in items
        if item.kind == "value" and (item.position, item.attempt) not in void
    )


async def test_a_reader_across_a_sigkill_gets_a_retract_before_the_next_attempt(
    db: Path | str, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    doomed = await asyncio.to_thread(spawn_worker, db, effects, BLOCK="speak")
    async with durable.Runtime(db, recover=False) as rt:
        handle = await rt.start(child.speaker, run_id="speaker")
        items: list[durable.StreamItem] = []

        async def read() -> None:
            async for item in rt.read_stream("speaker", "answer"):
                items.append(item)

        reading = asyncio.ensure_future(read())

        async def first_attempt_read() -> bool:
            return len(items) >= 3

        await until(first_attempt_read, timeout=30)  # the doomed attempt's tokens, live
        sigkill(doomed)  # type: ignore[arg-type]
        worker = await asyncio.to_thread(spawn_worker, db, effects)
        assert await handle.result(timeout=30) == child.ANSWER
        await asyncio.wait_for(reading, 30)  # the stream was closed
        assert [(item.kind, item.attempt) for item in items] == [
            *[("value", 1)] * 3,
            ("retract", 1),
            *[("value", 2)] * TOKENS,
        ]
        assert {item.position for item in items} == {0}
        assert "".join(item.value for item in items[:3]) == "Let me think"
        assert kept_text(items) == child.ANSWER
        for i, item in enumerate(items):  # a reader resuming anywhere misses nothing
            resumed = [
                later async for later in rt.read_stream("speaker", "answer", after=item.cursor)
            ]
            assert resumed == items[i + 1 :]
    worker.send_signal(signal.SIGTERM)
    worker.communicate(timeout=30)


def read_events(
    client: httpx.Client, path: str, headers: dict[str, str], count: int | None
) -> list[dict[str, Any]]:
    """The first ``count`` events of the stream at ``path`` (all, to its end, if None)."""
    found: list[dict[str, Any]] = []
    with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.read()
        lines = response.iter_lines()
        while count is None or len(found) < count:
            event = next_event(lines)
            if event["event"] == "end":
                break
            found.append(event)
    return found


def test_sse_resumes_with_last_event_id_or_after_with_nothing_lost_or_repeated(
    db: Path | str,
) -> None:
    proc, url = serve(db)
    with httpx.Client(base_url=url, timeout=30) as client:
        started = client.post("/api/workflows/child.speaker/runs", json={"args": [True]})
        run_id = started.json()["run_id"]
        path = f"/api/runs/{run_id}/streams/answer"
        whole = read_events(client, path, {}, None)
        assert [event["event"] for event in whole] == [
            *["value"] * 3,
            "retract",
            *["value"] * TOKENS,
        ]
        for event in whole:
            assert event["data"]["cursor"] == int(event["id"])
        retract = whole[3]["data"]
        assert (retract["position"], retract["attempt"], retract["value"]) == (0, 1, None)
        for cut in (1, 3, 4, len(whole) - 1):  # a client that lost the connection there
            seen = read_events(client, path, {}, cut)
            last = seen[-1]["id"]
            rest = read_events(client, path, {"Last-Event-ID": last}, None)
            assert seen + rest == whole
            assert read_events(client, f"{path}?after={last}", {}, None) == rest
        bad = client.get(path, headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 422 and "cursor" in bad.json()["message"]
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert "stopped cleanly" in out


def test_the_web_view_folds_a_stream_and_strikes_out_a_retracted_attempt(
    db: Path | str,
    browser_path: str,  # noqa: F811  (the fixture imported above)
) -> None:
    from playwright.sync_api import sync_playwright

    proc, url = serve(db)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            started = client.post("/api/workflows/child.speaker/runs", json={"args": [True]})
            run_id = started.json()["run_id"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=FLAGS)
            page = browser.new_page()
            page.goto(f"{url}/#/runs/{run_id}")
            panel = page.locator('[data-stream="answer"]')
            panel.filter(has_text=child.ANSWER).wait_for()
            assert panel.locator("del.retracted").text_content() == "Let me think"
            assert panel.text_content() == "Let me think" + child.ANSWER  # one text, no rows
            browser.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
