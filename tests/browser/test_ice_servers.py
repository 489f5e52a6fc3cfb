"""The call page configures its peer connection with the ICE servers the service advertises
(RFC 9725 §4.6: the `rel="ice-server"` links of the WHIP endpoint's OPTIONS answer), with the
TURN credentials given on the TURN links."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from typing import Any

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
TURN = "turn:127.0.0.1:9?transport=tcp"
SECRET = "turn-shared-secret-of-the-page-test"
# A quote, a backslash, a comma and a semicolon: each must survive the link's quoting.
STATIC_PASSWORD = 'pa"ss\\word, with; separators'
NO_CREDENTIALS: dict[str, Any] = {}
SHARED_SECRET: dict[str, Any] = {"turn_shared_secret": SECRET}
STATIC: dict[str, Any] = {"turn_username": "relay-user", "turn_password": STATIC_PASSWORD}


@pytest.fixture
async def service_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The page's service, advertising `STUN` and `TURN`, with the TURN credential settings
    the test is parametrised with."""
    async with page_service(ice_servers=",".join([*STUN, TURN]), **request.param) as url:
        yield url


async def _configured_ice_servers(browser: LaunchBrowser, url: str) -> list[dict[str, Any]]:
    """The iceServers of the page's peer connection once a call is connected (then hung up)."""
    opened = await open_call_page(browser, url)
    page = opened.page
    await page.get_by_test_id("start").click()
    status = page.get_by_test_id("status")
    await expect(status).to_have_attribute("data-state", "connected", timeout=CONNECT_TIMEOUT_MS)
    configured: list[dict[str, Any]] = await page.evaluate(
        "window.callbridge.pc.getConfiguration().iceServers"
    )
    assert opened.errors == []
    await page.get_by_test_id("hangup").click()
    await expect(status).to_have_attribute("data-state", "ended", timeout=CONNECT_TIMEOUT_MS)
    for server in configured:
        urls = server["urls"]
        server["urls"] = urls if isinstance(urls, str) else urls[0]
    return configured


@pytest.mark.parametrize("service_url", [NO_CREDENTIALS], indirect=True, ids=["no-credentials"])
async def test_the_page_leaves_out_a_turn_server_advertised_without_credentials(
    browser: LaunchBrowser, service_url: str
) -> None:
    configured = await _configured_ice_servers(browser, service_url)
    assert [server["urls"] for server in configured] == STUN


@pytest.mark.parametrize("service_url", [SHARED_SECRET], indirect=True, ids=["shared-secret"])
async def test_the_page_uses_the_turn_server_with_the_credentials_derived_for_it(
    browser: LaunchBrowser, service_url: str
) -> None:
    configured = await _configured_ice_servers(browser, service_url)
    assert [server["urls"] for server in configured] == [*STUN, TURN]
    turn = configured[-1]
    digest = hmac.new(SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()


@pytest.mark.parametrize("service_url", [STATIC], indirect=True, ids=["static"])
async def test_the_page_uses_the_turn_server_with_static_credentials_unescaped(
    browser: LaunchBrowser, service_url: str
) -> None:
    configured = await _configured_ice_servers(browser, service_url)
    turn = configured[-1]
    assert (turn["urls"], turn["username"], turn["credential"]) == (
        TURN,
        "relay-user",
        STATIC_PASSWORD,
    )
