"""The tracking page in a real headless browser (Debian's chromium, driven by selenium)
against a real router: sign in with a token, find a document, read each recipient's
timeline and the overdue overview. Keeps a screenshot: docs/tracking-screenshot.png.

Without chromium the test fails in CI (``CI=true``) and is skipped elsewhere."""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from backbone.clock import utc_now
from backbone.edxml import StatusCode
from tests.support.tracking_fixtures import (
    COMPLETED_STEPS,
    G22,
    H41,
    H41_COMMUNE,
    REJECTED_STEPS,
    agencies_today,
    dated_edxml,
    tracked_exchange,
)

pytestmark = pytest.mark.broker

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "tracking-screenshot.png"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@dataclass
class Seen:
    """What the page showed."""

    who: str
    title: str
    steps: dict[str, list[str]]  # recipient → the kinds of its timeline's steps
    states: dict[str, str]
    notes: list[str]
    overdue_tiers: dict[str, str]
    overdue_agencies: list[list[str]]
    journeys: int


def _browser_or_reason() -> str | None:
    if CHROMIUM is None or CHROMEDRIVER is None:
        return (
            "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def _browse(base_url: str, token: str, document_id: str) -> Seen:
    """Drive the page the way a leader would; blocking, so run off the router's loop."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1600",
        "--lang=vi-VN",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(f"{base_url}/track")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "#sign-in button").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "who"), f"signed in: {G22}"))
        wait.until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#overdue-agencies tbody tr")) > 0
        )
        driver.find_element(By.ID, "document-id").send_keys(document_id)
        driver.find_element(By.CSS_SELECTOR, "#find button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "article.recipient")) == 2)
        cards = driver.find_elements(By.CSS_SELECTOR, "article.recipient")
        steps = {
            card.get_attribute("data-recipient") or "": [
                item.get_attribute("data-kind") or ""
                for item in card.find_elements(By.CSS_SELECTOR, "ol.timeline li")
            ]
            for card in cards
        }
        states = {
            card.get_attribute("data-recipient") or "": card.find_element(
                By.CSS_SELECTOR, "h3 .badges .badge"
            ).text
            for card in cards
        }
        seen = Seen(
            who=driver.find_element(By.ID, "who").text,
            title=driver.find_element(By.ID, "document-title").text,
            steps=steps,
            states=states,
            notes=[n.text for n in driver.find_elements(By.CSS_SELECTOR, "article .note")],
            overdue_tiers={
                cells[0].text: cells[1].text
                for row in driver.find_elements(By.CSS_SELECTOR, "#overdue-tiers tbody tr")
                if (cells := row.find_elements(By.TAG_NAME, "td"))
            },
            overdue_agencies=[
                [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
                for row in driver.find_elements(By.CSS_SELECTOR, "#overdue-agencies tbody tr")
            ],
            journeys=len(driver.find_elements(By.CSS_SELECTOR, "#journeys tbody tr")),
        )
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
        return seen
    finally:
        driver.quit()


async def test_a_leader_follows_a_document_and_the_overdue_overview_in_a_browser(
    amqp_url: str, tmp_path: Path
) -> None:
    missing = _browser_or_reason()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test needs a browser in CI: {missing}", pytrace=False)
        pytest.skip(missing)
    today = agencies_today()  # the running router's clock, read in its zone
    due = today + timedelta(days=14)
    # Routed (by the store's clock) a week ago, so that the late document arrived before its
    # due date: one that arrives past it is never overdue.
    week_ago = lambda: utc_now() - timedelta(days=7)  # noqa: E731
    async with tracked_exchange(amqp_url, tmp_path, "sqlite", store_clock=week_ago) as tracked:
        deployment = tracked.deployment
        a = await deployment.adapter(G22)
        b = await deployment.adapter(H41)
        c = await deployment.adapter(H41_COMMUNE)
        b_inbox, c_inbox = deployment.inbox(b), deployment.inbox(c)
        sent = await a.send(dated_edxml(G22, [H41, H41_COMMUNE], 1, due))
        late = await a.send(
            dated_edxml(
                G22, [H41], 2, today - timedelta(days=3), promulgated=today - timedelta(days=7)
            )
        )
        await b_inbox.wait_for(2)
        await c_inbox.wait_for(1)
        await tracked.reached(sent.document_id, H41, "delivered")
        await tracked.answer(
            b,
            sent.document_id,
            [StatusCode.ACCEPTED, StatusCode.ASSIGNED, StatusCode.PROCESSING, StatusCode.COMPLETED],
        )
        await tracked.answer(c, sent.document_id, [StatusCode.REJECTED], "Không thuộc thẩm quyền")
        async with httpx.AsyncClient(base_url=tracked.base_url) as http:
            for _ in range(150):  # the overdue watch runs every 0.5 s
                overdue = await http.get("/api/overdue", headers=tracked.tokens.auth(G22))
                if overdue.json()["total"] == 1:
                    break
                await asyncio.sleep(0.1)
        assert overdue.json()["documents"][0]["document_id"] == late.document_id

        seen = await asyncio.to_thread(
            _browse, tracked.base_url, tracked.tokens.secrets[G22], sent.document_id
        )

    assert seen.who == f"signed in: {G22}"
    assert seen.title == sent.document_id
    assert seen.steps[H41] == COMPLETED_STEPS
    assert seen.steps[H41_COMMUNE] == REJECTED_STEPS
    assert seen.states == {H41: "completed", H41_COMMUNE: "rejected"}
    assert seen.notes == ["Không thuộc thẩm quyền"]
    assert seen.overdue_tiers["central-provincial"] == "1"
    assert seen.overdue_agencies == [[H41, "central-provincial", "1"]]
    assert seen.journeys == 3  # G22's three journeys
    assert SCREENSHOT.stat().st_size > 10_000
