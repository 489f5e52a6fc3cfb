"""The documentation page loads nothing from elsewhere: every script, stylesheet and icon it
names is on the service's own origin, and served there with its media type."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

from tests.e2e.conftest import RunningService, StartService
from tests.e2e.hostile import assert_problem

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


class _References(HTMLParser):
    """The `src` and `href` attributes of a page, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def _references(page: str) -> list[str]:
    parser = _References()
    parser.feed(page)
    return parser.urls


@pytest.fixture
async def service(start_service: StartService) -> RunningService:
    return await start_service(local_media=False)


async def test_the_docs_page_names_no_other_origin(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert re.search(r"//|https?:", page.text) is None, page.text
    assert _references(page.text)


async def test_every_asset_the_docs_page_names_is_served_with_its_media_type(
    service: RunningService,
) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        page = await client.get("/docs")
        for url in _references(page.text):
            asset = await client.get(url)
            assert asset.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert asset.headers["content-type"] == MEDIA_TYPES[suffix], url
            assert asset.content


async def test_an_asset_the_page_does_not_use_is_a_problem_404(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.get("/docs/assets/core.py")
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 404)


async def test_redoc_is_not_served(service: RunningService) -> None:
    # ReDoc 2 always loads its maker's logo from cdn.redoc.ly.
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.get("/redoc")
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 404)
