"""The web view as a debugger, in Chromium, on each backend: 10,000 runs paged and
searched, a run's timeline and steps (input, result, attempts, tracebacks), every
action reporting what it did, queues, schedules, starting a run, sending an event, and
an unknown run that stops polling.

With ``DURABLE_DOC_SCREENSHOTS=1`` the SQLite runs write the docs' screenshots
(``docs/web-*.png``)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from durable.workflow.step_info import idempotency_key

from .seeded_runs import seed
from .test_server_reads import until_status, web_site
from .test_web_view import FLAGS, browser_path

__all__ = ["browser_path"]

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def seeded(db: Path | str) -> None:
    """10,000 ended runs, ``bulk-00000`` (the oldest) to ``bulk-09999``, a minute apart."""
    asyncio.run(seed(db, 10_000, now=time.time()))


@pytest.fixture
def site(db: Path | str) -> Iterator[tuple[str, httpx.Client]]:
    with web_site(db) as served:
        yield served


@pytest.fixture
def page(browser_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=FLAGS)
        tab = browser.new_page(viewport={"width": 1100, "height": 760})
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        yield tab
        browser.close()
        assert errors == [], errors  # no script error on any page


def shoot(page: Any, db: Path | str, name: str, *, full_page: bool = False) -> None:
    """The docs' screenshot ``docs/web-NAME.png``, when asked for (SQLite runs only)."""
    if os.environ.get("DURABLE_DOC_SCREENSHOTS") and not str(db).startswith("postgresql"):
        page.screenshot(path=str(DOCS / f"web-{name}.png"), full_page=full_page)


def rows(page: Any) -> list[str]:
    return list(page.locator("tr.run").evaluate_all("rows => rows.map(r => r.dataset.run)"))


def wait_rows(page: Any, expected: list[str]) -> None:
    deadline = time.monotonic() + 15
    while rows(page) != expected:
        assert time.monotonic() < deadline, (
            f"rows {rows(page)[:5]}... never became {expected[:5]}..."
        )
        page.wait_for_timeout(50)


def test_ten_thousand_runs_are_paged_and_searched(
    seeded: None, site: tuple[str, httpx.Client], page: Any, db: Path | str
) -> None:
    url, _ = site
    page.goto(url + "/")
    wait_rows(page, [f"bulk-{i:05}" for i in range(9999, 9949, -1)])
    assert page.locator("#page-info").text_content() == "runs 1\u201350"
    assert page.locator("#prev").is_disabled()
    shoot(page, db, "runs")
    for _ in range(3):
        page.click("#next")
    wait_rows(page, [f"bulk-{i:05}" for i in range(9849, 9799, -1)])
    assert page.locator("#page-info").text_content() == "runs 151\u2013200"
    page.click("#prev")
    wait_rows(page, [f"bulk-{i:05}" for i in range(9899, 9849, -1)])
    page.fill("#search", "bulk-0004")  # among the oldest: far past the newest 200
    wait_rows(page, [f"bulk-{i:05}" for i in range(49, 39, -1)])
    assert page.locator("#page-info").text_content() == "runs 1\u201310 (the last)"
    assert page.locator("#next").is_disabled() and page.locator("#prev").is_disabled()
    page.select_option("#status-filter", "failed")
    wait_rows(page, ["bulk-00049", "bulk-00046", "bulk-00043", "bulk-00040"])
    page.fill("#workflow-filter", "bulk.import")
    wait_rows(page, ["bulk-00046", "bulk-00040"])
    page.fill("#search", "")
    page.fill("#workflow-filter", "")
    page.select_option("#status-filter", "")
    page.fill("#search", "bulk-0")
    wait_rows(page, [f"bulk-{i:05}" for i in range(9999, 9949, -1)])
    page.click("#next")
    wait_rows(page, [f"bulk-{i:05}" for i in range(9949, 9899, -1)])
    page.locator('tr.run[data-run="bulk-09919"]').click()
    page.locator('#header h2 [data-status="failed"]').wait_for()
    assert "no durable calls yet" in page.locator("#timeline").inner_text()


def test_a_run_page_shows_its_timeline_steps_attempts_and_takes_an_event(
    site: tuple[str, httpx.Client], page: Any, db: Path | str
) -> None:
    url, api = site
    api.post(
        "/api/workflows/web.checkout/runs",
        json={"args": ["o-1"]},
        headers={"Idempotency-Key": "o-1"},
    )
    until_status(api, "o-1", "waiting")
    page.goto(url + "/#/runs/o-1")
    page.locator('#header h2 [data-status="waiting"]').wait_for()
    lanes = page.locator("#timeline .lane[data-position]")
    lanes.nth(4).wait_for()
    assert lanes.evaluate_all("ls => ls.map(l => l.dataset.family)") == [
        "step", "step", "child", "sleep", "wait",
    ]  # fmt: skip
    assert "(2 attempts)" in lanes.nth(1).inner_text()
    assert page.locator('.lane[data-position="1"] .bar.failed').count() == 1
    assert page.locator('.lane[data-position="2"] a').text_content() == "o-1.2"
    assert page.locator("#timeline .tick").count() == 5
    assert "+" in page.locator("#timeline .tick").nth(4).text_content()
    assert page.locator("#streams").is_hidden()  # no stream: no panel
    charge = page.locator('details.step[data-position="1"]')
    charge.locator("summary").click()
    assert '"o-1"' in charge.locator(".step-input").text_content()
    assert "r-o-1" in charge.locator(".step-result").text_content()
    key = idempotency_key("o-1", 1, "charge")
    assert charge.locator(".idempotency-key").text_content() == key
    first = charge.locator('.attempt[data-attempt="1"]')
    assert "CardDeclined: card declined for o-1" in first.locator(".attempt-error").text_content()
    assert "in charge" in first.locator(".traceback").text_content()
    assert charge.locator('.attempt[data-attempt="2"] [data-status="completed"]').count() == 1
    polls = _requests(page, "/api/runs/o-1/steps")
    deadline = time.monotonic() + 15
    while len(polls) < 2:  # two polls later, the step opened stays open
        assert time.monotonic() < deadline
        page.wait_for_timeout(50)
    assert charge.get_attribute("open") is not None
    shoot(page, db, "run", full_page=True)
    assert page.locator("#event-name").input_value() == "shipped"  # the wait it is in
    page.fill("#event-payload", '{"carrier": "<i>post</i>"}')
    page.click("#event-send")
    page.locator("#notice").filter(has_text="Sent event 'shipped' to run o-1.").wait_for()
    page.locator('#header h2 [data-status="completed"]').wait_for()
    assert '"carrier": "<i>post</i>"' in page.locator("#output").text_content()
    assert page.locator("#output i").count() == 0
    assert page.locator("#cancel").count() == 0  # nothing to cancel once ended


def _requests(page: Any, path: str) -> list[str]:
    """The requests the page makes from now on to ``path``, as they go."""
    made: list[str] = []
    page.on("request", lambda r: made.append(r.url) if r.url.split("?")[0].endswith(path) else None)
    return made


def _accept(page: Any, answer: bool) -> list[str]:
    seen: list[str] = []

    def handle(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.accept() if answer else dialog.dismiss()

    page.once("dialog", handle)
    return seen


def test_actions_are_offered_where_they_work_and_say_what_they_did(
    site: tuple[str, httpx.Client], page: Any, db: Path | str
) -> None:
    url, api = site
    api.post(
        "/api/workflows/web.broken/runs", json={"args": ["o-2"]}, headers={"Idempotency-Key": "b"}
    )
    api.post("/api/workflows/web.nap/runs", json={"args": [3600]}, headers={"Idempotency-Key": "n"})
    until_status(api, "b", "failed")
    until_status(api, "n", "sleeping")
    page.goto(url + "/#/runs/b")
    page.locator("#resume").wait_for()
    assert page.locator("#resume").text_content() == "Retry step 'refund'"
    assert page.locator("#cancel").count() == 0  # an ended run cannot be cancelled
    traceback = page.locator('details.step[data-position="1"] .traceback').first
    assert "refused: <b>no</b>" in traceback.text_content()  # a failed step opens itself
    shoot(page, db, "failed", full_page=True)
    page.click("#resume")
    page.locator("#notice").filter(has_text="Resumed: step 'refund' (#1) runs again").wait_for()
    page.locator('#header h2 [data-status="failed"]').wait_for()
    page.select_option("#rerun-position", "0")
    asked = _accept(page, False)
    page.click("#rerun")
    assert asked and "Re-run this run from step #0" in asked[0]
    assert page.locator("#notice").text_content() == "Resumed: step 'refund' (#1) runs again;" \
        " its failure is kept, marked superseded."  # fmt: skip
    _accept(page, True)
    page.click("#rerun")
    page.locator("#notice").filter(has_text="Re-running from #0").wait_for()

    api.post("/api/workflows/web.late/runs", json={}, headers={"Idempotency-Key": "late"})
    until_status(api, "late", "failed")
    page.goto(url + "/#/runs/late")
    page.locator("#no-resume").filter(has_text="failed at its deadline").wait_for()
    assert page.locator("#resume").count() == 0 and page.locator("#rerun").count() == 0

    page.goto(url + "/#/runs/n")
    page.locator(".track .note.wake").filter(has_text="wakes").wait_for()
    assert page.locator("#resume").count() == 0 and page.locator("#rerun").count() == 0
    asked, cancels = _accept(page, False), _requests(page, "/api/runs/n/cancel")
    page.click("#cancel")  # the dialog is answered before click returns
    assert asked and "cannot be resumed" in asked[0]
    assert cancels == [] and api.get("/api/runs/n").json()["status"] == "sleeping"
    _accept(page, True)
    page.click("#cancel")
    page.locator("#notice").filter(has_text="Cancelled run n").wait_for()
    page.locator('#header h2 [data-status="cancelled"]').wait_for()
    page.locator("#cancel").wait_for(state="detached")


def test_an_unknown_run_says_so_and_stops_polling(
    site: tuple[str, httpx.Client], page: Any
) -> None:
    url, _ = site
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/runs/nope" in r.url else None)
    page.goto(url + "/#/runs/nope")
    page.locator("#not-found").filter(has_text="There is no run with the id nope").wait_for()
    page.wait_for_timeout(2500)  # two and a half polling periods
    assert len(asked) == 1
    page.click("#not-found a")
    page.locator("#runs").wait_for()


def test_queues_schedules_and_starting_a_run(
    site: tuple[str, httpx.Client], page: Any, db: Path | str
) -> None:
    url, api = site
    for i in range(3):
        api.post("/api/workflows/web.in_line/runs", json={"args": [i]})
    page.goto(url + "/#/queues")
    row = page.locator('#queues tr[data-queue="web.one_at_a_time"]')
    row.locator(".queued").filter(has_text="2").wait_for()
    assert row.locator(".running").text_content() == "1"
    assert row.locator("td").nth(3).text_content() == "1"  # its concurrency
    assert (
        page.locator('#queues tr[data-queue="child.rated"] td').nth(5).text_content() == "3 per 1 s"
    )
    shoot(page, db, "queues")
    page.click('nav a[href="#/schedules"]')
    nightly = page.locator('#schedules tr[data-schedule="web.nightly"]')
    nightly.wait_for()
    assert "(in " in nightly.locator(".next-tick").text_content()
    assert nightly.locator(".next-tick").get_attribute("title").endswith("T03:00:00+00:00")
    page.click('nav a[href="#/start"]')
    page.select_option("#start-workflow", "web.checkout@1")
    assert "parameters: order_id, cents" in page.locator("#start-about").text_content()
    page.fill("#start-args", '["o-9"')
    page.click("#start-send")
    page.locator("#problem").filter(has_text="the arguments are not JSON").wait_for()
    page.fill("#start-args", '["o-9"]')
    page.fill("#start-kwargs", '{"cents": 42}')
    page.fill("#start-run-id", "started-here")
    shoot(page, db, "start")
    page.click("#start-send")
    page.locator("#notice").filter(
        has_text="Started run started-here of web.checkout@1."
    ).wait_for()
    assert page.url.endswith("#/runs/started-here")
    page.locator('details.step[data-position="1"]').wait_for()
    run = api.get("/api/runs/started-here").json()
    assert run["input"] == {"args": ["o-9"], "kwargs": {"cents": 42}}
    page.click('nav a[href="#/start"]')
    page.select_option("#start-workflow", "web.checkout@1")
    page.fill("#start-args", '["other"]')
    page.fill("#start-run-id", "started-here")
    page.click("#start-send")
    page.locator("#problem").filter(has_text="IDEMPOTENCY_KEY_MISMATCH").wait_for()


def test_an_answer_being_typed_survives_the_polling(
    site: tuple[str, httpx.Client], page: Any
) -> None:
    url, api = site
    api.post("/api/workflows/child.ask_text/runs", json={}, headers={"Idempotency-Key": "t"})
    page.goto(url + "/#/runs/t")
    page.locator("#answer-text").fill("00")
    polls = _requests(page, "/api/runs/t/waits")
    deadline = time.monotonic() + 15
    while len(polls) < 2:
        assert time.monotonic() < deadline
        page.wait_for_timeout(50)
    page.locator("#answer-text").press("End")
    page.keyboard.type("7")
    page.click("#answer-send")
    page.locator('#header h2 [data-status="completed"]').wait_for()
    assert page.locator("#output").text_content() == "\"hello '007'\""


def test_a_sleep_beyond_any_date_is_shown_not_thrown(
    site: tuple[str, httpx.Client], page: Any
) -> None:
    """A wake time past what a browser's Date holds (a sleep of 1e300 s) is named, and the
    rest of the run's page is drawn (the fixture fails on any script error)."""
    url, api = site
    started = api.post("/api/workflows/web.nap/runs", json={"args": [1e300]})
    run_id = started.json()["run_id"]
    until_status(api, run_id, "sleeping")
    page.goto(f"{url}/#/runs/{run_id}")
    page.locator("#timeline").filter(has_text="beyond any date").wait_for()
    page.locator("#header h2 [data-status='sleeping']").wait_for()
