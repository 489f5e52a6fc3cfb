"""The documentation page renders the API in headless Chromium with every request on the
service's own origin, and, with tokens configured, takes a token in its Authorize dialog for the
operations that ask for one. The service is reached by a name that is not loopback (Chromium maps
it to 127.0.0.1), as a deployed one would be, and every other name resolves to nothing, so no
request leaves the machine.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import LaunchBrowser, page_service

try:
    from playwright.async_api import Page, Request, expect
except ImportError:  # the conftest fixtures skip (or fail under CI) with the reason
    if os.environ.get("CI", "").strip().lower() == "true":
        raise
    pytest.skip("Playwright is not installed", allow_module_level=True)

HOST = "callbridge.test"
RESOLVER = f"--host-resolver-rules=MAP {HOST} 127.0.0.1, MAP * ~NOTFOUND"
RENDER_TIMEOUT_MS = 30_000
API_TOKEN = "docs-api-token-0123456789abcdef"
# Settings with every token: call tokens can be minted (with an API token) and the ops routes
# ask for the ops token.
TOKENS = {
    "api_tokens": API_TOKEN,
    "call_token_secret": "docs-call-token-secret-0123456789",
    "ops_token": "docs-ops-token-0123456789abcdef",
}
MINT_CALL_TOKEN = "#operations-calls-mint_token_v1_call_tokens_post"


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


async def _rendered(page: Page) -> None:
    """Wait until Swagger UI has rendered the document's title."""
    title = page.locator(".swagger-ui .info .title")
    await expect(title).to_contain_text("callbridge", timeout=RENDER_TIMEOUT_MS)


async def test_swagger_ui_renders_the_api_with_nothing_fetched_elsewhere(
    browser: LaunchBrowser, service_url: str
) -> None:
    page, requested = await _open(browser, service_url, "/docs")
    await _rendered(page)
    await expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    await expect(page.locator(".swagger-ui .errors-wrapper")).to_have_count(0)
    await page.wait_for_load_state("networkidle")
    assert f"http://{HOST}:{urlsplit(service_url).port}/openapi.json" in requested
    assert _elsewhere(requested, service_url) == []


async def test_with_tokens_only_the_operations_asking_for_one_show_a_lock(
    browser: LaunchBrowser,
) -> None:
    async with page_service(**TOKENS) as url:
        page, _ = await _open(browser, url, "/docs")
        await _rendered(page)
        lock = ".authorization__btn"
        await expect(page.locator(f"{MINT_CALL_TOKEN} {lock}")).to_have_count(1)
        await expect(page.locator(f"#operations-ops-metrics_metrics_get {lock}")).to_have_count(1)
        await expect(page.locator(f"#operations-ops-healthz_healthz_get {lock}")).to_have_count(0)


async def test_with_tokens_a_token_given_to_authorize_is_sent_by_try_it_out(
    browser: LaunchBrowser,
) -> None:
    async with page_service(**TOKENS) as url:
        page, _ = await _open(browser, url, "/docs")
        await _rendered(page)
        await page.locator(".swagger-ui .auth-wrapper .authorize").click()
        caller = page.locator(".auth-container").filter(has_text="callerToken")
        await expect(caller).to_contain_text("http, Bearer")
        await caller.locator("input").fill(API_TOKEN)
        await caller.locator("button.authorize").click()
        await caller.locator("button.btn-done").click()
        # Minting a call token takes an API token and nothing else.
        operation = page.locator(MINT_CALL_TOKEN)
        await operation.locator(".opblock-summary-control").click()
        await operation.locator("button.try-out__btn").click()
        await operation.locator("button.execute").click()
        status = operation.locator(".live-responses-table .response .response-col_status")
        await expect(status).to_have_text("201", timeout=RENDER_TIMEOUT_MS)
