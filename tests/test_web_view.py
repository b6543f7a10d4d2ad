"""The web view in a real browser (Debian's Chromium through Playwright): the list, a
run's page and timeline, answering its question with a button, and escaping."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from .test_server import serve

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture(scope="module")
def browser_path() -> str:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(
                f"CI must run the browser tests: {CHROMIUM} is missing (.ci/run installs it)"
            )
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return CHROMIUM


def test_answer_a_question_in_the_browser_and_watch_the_run_complete(
    db: Path | str, tmp_path: Path, browser_path: str
) -> None:
    from playwright.sync_api import sync_playwright

    question = "Ship <script>window.pwned = 1</script><b>now</b>?"
    proc, url = serve(db)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            run_id = client.post(
                "/api/workflows/child.ask_about/runs", json={"args": [question]}
            ).json()["run_id"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(url + "/")
            row = page.locator(f'tr.run[data-run="{run_id}"]')
            row.wait_for()
            assert "child.ask_about" in row.inner_text()
            row.click()
            page.locator("#question-text").wait_for()
            assert page.locator("#question-text").text_content() == question  # as text
            assert page.locator("#question-text b").count() == 0
            assert page.evaluate("window.pwned") is None  # the script never ran
            assert page.locator("#state").text_content() is not None
            page.locator(".lane").nth(1).wait_for()  # the step and the wait, as bars
            assert "prepare" in page.locator(".timeline").inner_text()
            assert page.locator("#streams").is_hidden()  # no stream written yet: no panel
            ship, hold = (
                page.get_by_role("button", name=n).bounding_box() for n in ("Ship it", "Hold")
            )
            assert ship is not None and hold is not None
            assert hold["x"] - (ship["x"] + ship["width"]) >= 6  # the answers do not touch
            page.screenshot(path=str(tmp_path / "run-page.png"), full_page=True)
            page.get_by_role("button", name="Ship it").click()
            page.locator('#header h2 [data-status="completed"]').wait_for(timeout=15_000)
            assert page.locator("#notice").text_content() == 'Answered "yes".'
            assert page.locator("#output").text_content() == '"yes"'
            page.locator('[data-stream="log"]').filter(has_text="answered yes").wait_for()
            assert page.locator("#streams").is_visible()
            browser.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_behind_a_token_the_page_loads_and_asks_for_it(
    db: Path | str, tmp_path: Path, browser_path: str
) -> None:
    """With --token the page, its script and its styles load without it; the page asks
    for the token, keeps it for the tab and sends it as a Bearer header; the API still
    refuses requests without it."""
    from playwright.sync_api import sync_playwright

    proc, url = serve(db, "--token", "s3cret")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/api/runs").status_code == 401
            bearer = {"Authorization": "Bearer s3cret"}
            run_id = client.post(
                "/api/workflows/child.ask_text/runs", json={}, headers=bearer
            ).json()["run_id"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=FLAGS)
            page = browser.new_page()
            scripts = []
            page.on("response", lambda r: scripts.append((r.url.removeprefix(url), r.status)))
            page.goto(url + "/")
            page.locator("#token-form").wait_for()
            assert ("/static/app.js", 200) in scripts and ("/static/style.css", 200) in scripts
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(246, 247, 249)"  # style.css applied
            page.fill("#token-input", "wrong")
            page.click("#token-send")
            page.locator("#token-form").filter(has_text="refused").wait_for()
            page.fill("#token-input", "s3cret")
            page.click("#token-send")
            page.locator(f'tr.run[data-run="{run_id}"]').wait_for()
            assert page.evaluate("sessionStorage.getItem('durable-token')") == "s3cret"
            page.reload()  # kept for the tab: no question again
            page.locator(f'tr.run[data-run="{run_id}"]').click()
            page.locator("#question-text").wait_for()
            assert page.locator("#token-form").count() == 0
            page.screenshot(path=str(tmp_path / "token-page.png"), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
