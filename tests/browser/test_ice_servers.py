"""The call page configures its peer connection with the ICE servers the service advertises
(RFC 9725 §4.6: the `rel="ice-server"` links of the WHIP endpoint's OPTIONS answer)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from tests.browser.conftest import LaunchBrowser, page_service
from tests.browser.test_call_page import CONNECT_TIMEOUT_MS, open_call_page

try:
    from playwright.async_api import expect
except ImportError:  # the conftest fixtures skip (or fail under CI) with the reason
    if os.environ.get("CI", "").strip().lower() == "true":
        raise
    pytest.skip("Playwright is not installed", allow_module_level=True)

# Nothing listens there: the servers are configured, the call still connects on host candidates.
STUN = ["stun:127.0.0.1:9", "stuns:127.0.0.1:9"]
# Advertised without credentials (the service has no way to give them): left out by the page.
TURN = ["turn:127.0.0.1:9?transport=tcp"]


@pytest.fixture
async def service_url() -> AsyncIterator[str]:
    """The page's service, advertising `STUN` and `TURN`."""
    async with page_service(ice_servers=",".join(STUN + TURN)) as url:
        yield url


async def test_the_page_uses_the_stun_servers_the_service_advertises(
    browser: LaunchBrowser, service_url: str
) -> None:
    opened = await open_call_page(browser, service_url)
    page = opened.page
    await page.get_by_test_id("start").click()
    status = page.get_by_test_id("status")
    await expect(status).to_have_attribute("data-state", "connected", timeout=CONNECT_TIMEOUT_MS)
    configured = await page.evaluate(
        "window.callbridge.pc.getConfiguration().iceServers.map((s) => s.urls)"
    )
    assert [u if isinstance(u, str) else u[0] for u in configured] == STUN
    assert opened.errors == []
    await page.get_by_test_id("hangup").click()
    await expect(status).to_have_attribute("data-state", "ended", timeout=CONNECT_TIMEOUT_MS)
