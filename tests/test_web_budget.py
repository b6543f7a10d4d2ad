"""Budgets in the web view, in Chromium, on each backend: a run's spend against its
budget, a budget question with Stop and a field that raises the budget (the run goes
on), the held step in the timeline and the steps list, and a child held by its
parent's budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .test_server_reads import until_status, web_site
from .test_web_debugger import page, shoot
from .test_web_view import browser_path

__all__ = ["browser_path", "page"]


@pytest.fixture
def site(db: Path | str) -> Iterator[tuple[str, httpx.Client]]:
    with web_site(db, "--module", "tests.budget_app") as served:
        yield served


def test_raise_the_budget_in_the_page_then_stop(
    site: tuple[str, httpx.Client], page: Any, db: Path | str
) -> None:
    url, api = site
    api.post("/api/workflows/budget.spender/runs", json={}, headers={"Idempotency-Key": "wb"})
    page.goto(url + "/#/runs/wb")
    question = page.locator("#question")
    question.locator("h2").filter(has_text="budget reached").wait_for()
    text = page.locator("#question-text").text_content()
    assert "The dollar budget held by this run is reached: spent $1 · 200 tokens of $1" in text
    assert "The step or child at #2 (not started yet) waits" in text
    assert question.locator('button[data-option="stop"]').text_content() == "Stop"
    assert page.locator("#budget-spent").text_content() == (
        "spent $1 · 200 tokens (this run and the runs below it) of $1"
    )
    assert page.locator('#budget .meter.full[data-unit="usd"]').count() == 1
    held = page.locator('#timeline .lane[data-position="2"]')
    assert held.get_attribute("data-family") == "budget"
    assert "waiting for a raise or stop" in held.inner_text()
    assert page.locator("#event-name").input_value() == ""  # a budget question takes no event
    assert page.locator("#budget-form").count() == 1  # in the question, not twice

    page.click("#budget-raise")  # nothing typed: nothing sent
    page.locator("#problem").filter(has_text="enter a new cap").wait_for()
    page.fill("#budget-usd", "0.5")
    page.click("#budget-raise")
    page.locator("#problem").filter(has_text="INVALID_AMOUNT").wait_for()
    page.fill("#budget-usd", "1.5")
    page.click("#budget-raise")
    page.locator("#notice").filter(
        has_text="Raised the budget of run wb to $1.5; the runs it held back go on."
    ).wait_for()
    page.locator("#question-text").filter(has_text="at #3").wait_for()  # asks again
    page.locator('details.step[data-position="2"]').wait_for()
    shoot(page, db, "budget", full_page=True)
    assert page.locator("#steps").inner_text().endswith("100 tokens")  # no stray text after
    step = page.locator('#timeline .lane[data-position="2"]')
    assert step.get_attribute("data-family") == "step" and step.get_attribute("data-held") == ""
    assert "held" in step.inner_text() and "$0.5 · 100 tokens" in step.inner_text()
    assert step.locator(".bar.held").count() == 1
    paid = page.locator('details.step[data-position="2"]')
    assert "spent $0.5 · 100 tokens" in paid.locator("summary").text_content()

    page.locator('#question button[data-option="stop"]').click()
    page.locator("#notice").filter(
        has_text="Stopped: the held call raises BudgetExceeded"
    ).wait_for()
    page.locator('#header h2 [data-status="completed"]').wait_for()
    assert page.locator("#output").text_content() == "[\n  0,\n  1,\n  2,\n  -1\n]"
    stopped = page.locator('#timeline .lane[data-position="3"]')
    assert stopped.get_attribute("data-family") == "budget"
    assert "stopped: not started" in stopped.inner_text()
    assert page.locator("#budget-form").count() == 0  # an ended run takes no raise


def test_a_child_held_by_its_parents_budget(site: tuple[str, httpx.Client], page: Any) -> None:
    url, api = site
    api.post("/api/workflows/budget.tree/runs", json={}, headers={"Idempotency-Key": "t"})
    page.goto(url + "/#/runs/t.0")
    page.locator("#question-text").filter(has_text="token budget held by").wait_for()
    assert page.locator("#question-text a").text_content() == "t"  # the holder, a link
    assert page.locator("#budget-holder a").text_content() == "t"
    page.goto(url + "/#/runs/t")
    page.locator("#budget-spent").filter(has_text="200 tokens").wait_for()
    assert "this run itself: nothing" in page.locator("#budget").inner_text()
    assert page.locator("#question").is_hidden()  # the child asks, not the parent
    page.fill("#budget-tokens", "1000")
    page.click("#budget-raise")  # the form of the budget panel
    page.locator("#notice").filter(has_text="Raised the budget of run t to 1000 tokens").wait_for()
    page.locator('#header h2 [data-status="completed"]').wait_for()
    assert until_status(api, "t.0", "completed")["output"] == 3


def test_start_a_run_with_a_budget_from_the_form(site: tuple[str, httpx.Client], page: Any) -> None:
    url, api = site
    page.goto(url + "/#/start")
    page.select_option("#start-workflow", "budget.spender@1")
    assert "budget $1" in page.locator("#start-about").text_content()
    page.select_option("#start-workflow", "budget.free@1")
    assert "· budget" not in page.locator("#start-about").text_content()
    page.fill("#start-budget-tokens", "50")
    page.fill("#start-run-id", "capped")
    page.click("#start-send")
    page.locator("#budget-spent").filter(has_text="100 tokens").wait_for()
    assert page.locator("#budget-spent").text_content().endswith("of 50 tokens")
    run = until_status(api, "capped", "completed")
    assert run["input"] == {"args": [], "kwargs": {}, "budget": {"usd": None, "tokens": 50}}
