"""The documentation page renders the API in headless Chromium with every request on the
service's own origin. The service is reached by a name that is not loopback (Chromium maps it to
127.0.0.1), as a deployed one would be, and every other name resolves to nothing, so no request
leaves the machine.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import LaunchBrowser

try:
    from playwright.async_api import Page, Request, expect
except ImportError:  # the conftest fixtures skip (or fail under CI) with the reason
    if os.environ.get("CI", "").strip().lower() == "true":
        raise
    pytest.skip("Playwright is not installed", allow_module_level=True)

HOST = "callbridge.test"
RESOLVER = f"--host-resolver-rules=MAP {HOST} 127.0.0.1, MAP * ~NOTFOUND"
RENDER_TIMEOUT_MS = 30_000


async def _open(browser: LaunchBrowser, service_url: str, path: str) -> tuple[Page, list[str]]:
    """The page at `path` of the service reached as `HOST`, and every URL it requested."""
    port = urlsplit(service_url).port
    instance = await browser(extra_args=[RESOLVER])
    context = await instance.new_context()
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    context.on("request", record)
    page = await context.new_page()
    await page.goto(f"http://{HOST}:{port}{path}")
    return page, requested


def _elsewhere(requested: list[str], service_url: str) -> list[str]:
    origin = f"http://{HOST}:{urlsplit(service_url).port}"
    return [
        url
        for url in requested
        if urlsplit(url).scheme not in ("data", "blob") and not url.startswith(f"{origin}/")
    ]


async def test_swagger_ui_renders_the_api_with_nothing_fetched_elsewhere(
    browser: LaunchBrowser, service_url: str
) -> None:
    page, requested = await _open(browser, service_url, "/docs")
    title = page.locator(".swagger-ui .info .title")
    await expect(title).to_contain_text("callbridge", timeout=RENDER_TIMEOUT_MS)
    await expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    await expect(page.locator(".swagger-ui .errors-wrapper")).to_have_count(0)
    await page.wait_for_load_state("networkidle")
    assert f"http://{HOST}:{urlsplit(service_url).port}/openapi.json" in requested
    assert _elsewhere(requested, service_url) == []
