"""The call page at `/` in headless Chromium, against the service running in-process.

The service embeds the local stand-in provider and a worker: typed text that mentions the
"background agent" makes the model call the `background_agent` tool, the built-in worker
answers arithmetic, and the assistant reads the result back.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.make_test_utterances import TEST_UTTERANCES, write_test_utterance
from tests.browser.conftest import LaunchBrowser
from tests.conftest import require_espeak

try:
    from playwright.async_api import Page, Route, expect
except ImportError:  # the conftest fixtures skip (or fail under CI) with the reason
    if os.environ.get("CI", "").strip().lower() == "true":
        raise
    pytest.skip("Playwright is not installed", allow_module_level=True)

PROMPT = "please ask the background agent what is 2 plus 3"
CONNECT_TIMEOUT_MS = 20_000
HANDOFF_TIMEOUT_MS = 30_000
MICROPHONE_LEAD_S = 1.5


@dataclass
class OpenedPage:
    """A page on the call UI, with the uncaught script errors it raised."""

    page: Page
    errors: list[str] = field(default_factory=list)


async def open_call_page(
    launch: LaunchBrowser, url: str, *, init_script: str | None = None, **context: Any
) -> OpenedPage:
    """A new browser context on `url`/, recording uncaught errors and console errors."""
    chromium = await launch()
    ctx = await chromium.new_context(**context)
    page = await ctx.new_page()
    opened = OpenedPage(page)
    page.on("pageerror", lambda exc: opened.errors.append(f"uncaught: {exc}"))
    page.on(
        "console",
        lambda msg: opened.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    if init_script is not None:
        await page.add_init_script(init_script)
    await page.goto(f"{url}/")
    return opened


async def no_horizontal_scroll(page: Page) -> bool:
    """True when nothing on the page is wider than the viewport."""
    result = await page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    return bool(result)


async def test_call_with_a_handoff_then_hang_up(
    browser: LaunchBrowser, service_url: str, artifacts_dir: Path
) -> None:
    opened = await open_call_page(browser, service_url, viewport={"width": 1100, "height": 900})
    page = opened.page
    status = page.get_by_test_id("status")
    await expect(status).to_have_attribute("data-state", "idle")

    await page.get_by_test_id("start").click()
    await expect(status).to_have_attribute("data-state", "connected", timeout=CONNECT_TIMEOUT_MS)
    await expect(status).to_have_text("Connected")
    await expect(page.get_by_test_id("hangup")).to_be_visible()
    call_id = await page.evaluate("window.callbridge.callId")
    assert isinstance(call_id, str)
    assert call_id
    await expect(page.get_by_test_id("call-id")).to_have_text(call_id)
    assert await page.evaluate("window.callbridge.pc.connectionState") == "connected"

    await page.get_by_test_id("message-input").fill(PROMPT)
    await page.get_by_test_id("message-send").click()

    transcript = page.get_by_test_id("transcript")
    user_turn = transcript.locator('li[data-role="user"]', has_text=PROMPT)
    await expect(user_turn).to_have_count(1, timeout=HANDOFF_TIMEOUT_MS)
    await expect(page.get_by_test_id("message-input")).to_have_value("")

    handoff = page.get_by_test_id("handoffs").locator("li[data-handoff-id]")
    await expect(handoff).to_have_count(1, timeout=HANDOFF_TIMEOUT_MS)
    await expect(handoff).to_have_attribute("data-state", "completed", timeout=HANDOFF_TIMEOUT_MS)
    await expect(handoff).to_contain_text("5")

    answer = transcript.locator('li[data-role="assistant"]', has_text=re.compile(r"\b5\b"))
    await expect(answer.first).to_be_visible(timeout=HANDOFF_TIMEOUT_MS)
    await expect(page.get_by_test_id("error")).to_be_hidden()
    await page.screenshot(path=artifacts_dir / "call-mid.png", full_page=True)

    await page.get_by_test_id("hangup").click()
    await expect(status).to_have_attribute("data-state", "ended", timeout=CONNECT_TIMEOUT_MS)
    await expect(page.get_by_test_id("start")).to_be_visible()
    assert await page.evaluate("window.callbridge.pc.connectionState") == "closed"
    async with httpx.AsyncClient(base_url=service_url, timeout=10) as client:
        response = await client.get(f"/v1/calls/{call_id}")
    assert response.status_code == 200
    assert response.json()["state"] == "ended"
    assert opened.errors == []


async def test_a_spoken_request_is_transcribed_handed_off_and_answered(
    service_url: str, browser: LaunchBrowser, artifacts_dir: Path, tmp_path: Path
) -> None:
    # Chromium's fake microphone plays the synthesized request once, then silence. It starts
    # playing when the page opens the microphone, before the call is connected (about 0.2 s
    # here; ICE gathering may take up to 2 s): the leading silence covers that.
    require_espeak()
    request = write_test_utterance(tmp_path, "request", lead_s=MICROPHONE_LEAD_S)
    speaking_browser = functools.partial(browser, fake_audio=request)
    opened = await open_call_page(
        speaking_browser, service_url, viewport={"width": 1100, "height": 900}
    )
    page = opened.page
    status = page.get_by_test_id("status")
    await page.get_by_test_id("start").click()
    await expect(status).to_have_attribute("data-state", "connected", timeout=CONNECT_TIMEOUT_MS)
    call_id = await page.evaluate("window.callbridge.callId")

    transcript = page.get_by_test_id("transcript")
    spoken = TEST_UTTERANCES["request"]
    said = transcript.locator('li[data-role="user"] p')
    await expect(said).to_have_text([spoken], timeout=HANDOFF_TIMEOUT_MS)
    handoff = page.get_by_test_id("handoffs").locator("li[data-handoff-id]")
    await expect(handoff).to_have_attribute("data-state", "completed", timeout=HANDOFF_TIMEOUT_MS)
    await expect(handoff).to_contain_text("5")
    answer = transcript.locator('li[data-role="assistant"]', has_text=re.compile(r"\b5\b"))
    await expect(answer.first).to_be_visible(timeout=HANDOFF_TIMEOUT_MS)
    await expect(page.get_by_test_id("error")).to_be_hidden()
    await page.screenshot(path=artifacts_dir / "spoken-call.png", full_page=True)

    await page.get_by_test_id("hangup").click()
    await expect(status).to_have_attribute("data-state", "ended", timeout=CONNECT_TIMEOUT_MS)
    async with httpx.AsyncClient(base_url=service_url, timeout=10) as client:
        response = await client.get(f"/v1/calls/{call_id}")
    assert response.json()["state"] == "ended"
    assert response.json()["end_reason"] == "hangup"
    assert opened.errors == []


async def test_phone_viewport_fits_without_horizontal_scroll(
    browser: LaunchBrowser, service_url: str, artifacts_dir: Path
) -> None:
    opened = await open_call_page(
        browser,
        service_url,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = opened.page
    start = page.get_by_test_id("start")
    await expect(start).to_be_visible()
    await expect(start).to_be_in_viewport()
    assert await no_horizontal_scroll(page)
    await page.screenshot(path=artifacts_dir / "phone-idle.png")

    # In a call, a long unbroken word in the transcript must wrap, not widen the page.
    await start.tap()
    status = page.get_by_test_id("status")
    await expect(status).to_have_attribute("data-state", "connected", timeout=CONNECT_TIMEOUT_MS)
    long_word = "x" * 200
    await page.get_by_test_id("message-input").fill(f"hello {long_word}")
    await page.get_by_test_id("message-send").tap()
    turn = page.get_by_test_id("transcript").locator('li[data-role="user"]', has_text=long_word)
    await expect(turn).to_have_count(1, timeout=HANDOFF_TIMEOUT_MS)
    await expect(page.get_by_test_id("hangup")).to_be_in_viewport()
    assert await no_horizontal_scroll(page)
    await page.screenshot(path=artifacts_dir / "phone-call.png")
    await page.get_by_test_id("hangup").tap()
    await expect(status).to_have_attribute("data-state", "ended", timeout=CONNECT_TIMEOUT_MS)
    assert opened.errors == []


async def test_call_ended_by_the_service_is_shown(browser: LaunchBrowser, service_url: str) -> None:
    opened = await open_call_page(browser, service_url)
    page = opened.page
    status = page.get_by_test_id("status")
    await page.get_by_test_id("start").click()
    await expect(status).to_have_attribute("data-state", "connected", timeout=CONNECT_TIMEOUT_MS)
    call_id = await page.evaluate("window.callbridge.callId")

    # Ended elsewhere (another client, an operator, a timeout): the page hears it over SSE.
    async with httpx.AsyncClient(base_url=service_url, timeout=10) as client:
        response = await client.delete(f"/v1/calls/{call_id}")
    assert response.status_code == 200
    await expect(status).to_have_attribute("data-state", "ended", timeout=CONNECT_TIMEOUT_MS)
    await expect(status).to_contain_text("Call ended")
    await expect(page.get_by_test_id("start")).to_be_visible()
    await expect(page.get_by_test_id("message-input")).to_be_disabled()
    assert await page.evaluate("window.callbridge.pc.connectionState") == "closed"
    assert opened.errors == []


DENY_MICROPHONE = """
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
"""


async def test_denied_microphone_is_explained(browser: LaunchBrowser, service_url: str) -> None:
    opened = await open_call_page(browser, service_url, init_script=DENY_MICROPHONE)
    page = opened.page
    offers: list[str] = []
    page.on("request", lambda req: offers.append(req.url) if req.method == "POST" else None)

    await page.get_by_test_id("start").click()
    error = page.get_by_test_id("error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("Microphone access was denied")
    await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "failed")
    await expect(page.get_by_test_id("start")).to_be_visible()
    await expect(page.get_by_test_id("start")).to_be_enabled()
    assert offers == []
    assert opened.errors == []


async def test_busy_service_is_explained(browser: LaunchBrowser, service_url: str) -> None:
    opened = await open_call_page(browser, service_url)
    page = opened.page

    async def draining(route: Route) -> None:
        problem = {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "this instance is draining",
        }
        await route.fulfill(
            status=503,
            content_type="application/problem+json",
            headers={"Retry-After": "10"},
            body=json.dumps(problem),
        )

    await page.route("**/v1/calls", draining)
    await page.get_by_test_id("start").click()
    error = page.get_by_test_id("error")
    await expect(error).to_be_visible(timeout=CONNECT_TIMEOUT_MS)
    await expect(error).to_contain_text("busy")
    await expect(error).to_contain_text("this instance is draining")
    await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "failed")
    assert await page.evaluate("window.callbridge.pc.connectionState") == "closed"
    # The browser reports the 503 itself as a console error; only script errors count here.
    assert [e for e in opened.errors if not e.startswith("console:")] == []
