"""The HTTP surface says what it does: Allow lists exactly what works, here and server-wide
(`OPTIONS *`), unknown paths are 404."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import RunningService, StartService
from tests.e2e.hostile import (
    RawConnection,
    RawResponse,
    assert_problem,
    healthy,
    request_head,
)
from tests.unit.sdp_samples import AIORTC_OFFER

CALL_METHODS = {"DELETE", "GET", "HEAD", "OPTIONS"}


def _allow(response: httpx.Response | RawResponse) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")}


@pytest.fixture
async def service(start_service: StartService) -> RunningService:
    return await start_service(local_media=False)


async def _call(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
    )
    assert response.status_code == 201, response.text
    return response.headers["location"]


async def test_options_on_a_call_lists_the_methods_that_work_there(
    service: RunningService,
) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        location = await _call(client)
        response = await client.options(location)
        await client.delete(location)
    assert response.status_code == 204
    assert _allow(response) == CALL_METHODS


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_a_method_a_call_does_not_take_is_405_with_the_same_allow(
    service: RunningService, method: str
) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        location = await _call(client)
        response = await client.request(method, location, content=b"{}")
        await client.delete(location)
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 405)
    assert _allow(response) == CALL_METHODS


async def test_the_refused_trickle_patch_names_the_same_allow(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        location = await _call(client)
        response = await client.patch(
            location,
            content=b"a=end-of-candidates\r\n",
            headers={"content-type": "application/trickle-ice-sdpfrag", "if-match": "*"},
        )
        await client.delete(location)
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 405)
    assert _allow(response) == CALL_METHODS


async def test_options_on_the_whip_endpoint_keeps_accept_post_and_lists_its_methods(
    service: RunningService,
) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.options("/v1/calls")
    assert response.status_code == 204
    assert _allow(response) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert "application/sdp" in response.headers["accept-post"]


@pytest.mark.parametrize("path", ["/v1/nothing", "/nothing.html", "/v1/calls/rtc_x/nothing"])
@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS"])
async def test_an_unknown_path_is_404_whatever_the_method(
    service: RunningService, path: str, method: str
) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.request(method, path)
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 404)
    assert await healthy(service.url)


@pytest.mark.parametrize(
    ("path", "instance"),
    [("/v1/nothing%20here", "/v1/nothing%20here"), ("/v1/%ff", "/v1/%EF%BF%BD")],
    ids=["space", "undecodable"],
)
async def test_a_problems_instance_is_the_path_as_a_uri_reference(
    service: RunningService, path: str, instance: str
) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.get(path)
    assert (response.status_code, response.json()["instance"]) == (404, instance)


async def _asterisk(service: RunningService, method: str) -> RawResponse:
    """`method` with the asterisk-form target (RFC 9112 §3.2.4), which no HTTP client sends."""
    connection = await RawConnection.open(service.url)
    try:
        await connection.send(request_head(method, "*", {}))
        return await connection.response()
    finally:
        await connection.close()


async def test_options_asterisk_lists_every_method_some_path_takes(
    service: RunningService,
) -> None:
    response = await _asterisk(service, "OPTIONS")
    assert (response.status, response.body) == (204, b"")
    assert _allow(response) == {"DELETE", "GET", "HEAD", "OPTIONS", "POST"}


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_another_method_with_the_asterisk_target_is_a_400_problem(
    service: RunningService, method: str
) -> None:
    response = await _asterisk(service, method)
    assert_problem(response.status, response.headers["content-type"], response.json(), 400)


async def test_head_on_healthz_answers_as_get_without_content(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        get = await client.get("/healthz")
        head = await client.head("/healthz")
    assert head.status_code == get.status_code == 200
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.content == b""


async def test_head_on_a_call_answers_its_get_headers(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        location = await _call(client)
        get = await client.get(location)
        head = await client.head(location)
        await client.delete(location)
    assert head.status_code == get.status_code == 200
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.content == b""


async def test_head_on_an_event_stream_answers_its_headers_and_ends(
    service: RunningService,
) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        location = await _call(client)
        head = await client.head(f"{location}/events")
        await client.delete(location)
    assert head.status_code == 200
    assert head.headers["content-type"].startswith("text/event-stream")
    assert head.content == b""


async def test_head_where_no_get_is_served_is_405_naming_the_methods(
    service: RunningService,
) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        location = await _call(client)
        response = await client.head(f"{location}/messages")
        await client.delete(location)
    assert response.status_code == 405
    assert _allow(response) == {"OPTIONS", "POST"}


async def test_the_page_answers_get_and_refuses_post_with_allow(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        page = await client.get("/")
        post = await client.post("/", content=b"x")
        options = await client.options("/app.js")
    assert page.status_code == 200
    assert_problem(post.status_code, post.headers["content-type"], post.json(), 405)
    assert _allow(post) == {"GET", "HEAD", "OPTIONS"}
    assert _allow(options) == {"GET", "HEAD", "OPTIONS"}


async def test_every_documented_operation_lists_problem_json_for_its_errors(
    service: RunningService,
) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        document = (await client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400 and path not in ("/readyz",) and method != "head":
                    assert list(answer["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )


@pytest.mark.parametrize(
    "asked", ["bytes=0-10", "bytes=5-2", "bytes=999999-", "items=0-1", "garbage"]
)
async def test_the_call_page_ignores_range_and_is_always_whole(
    service: RunningService, asked: str
) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        whole = await client.get("/")
        ranged = await client.get("/", headers={"Range": asked, "If-Range": whole.headers["etag"]})
    assert ranged.status_code == 200
    assert ranged.content == whole.content
    assert "content-range" not in ranged.headers
    assert ranged.headers["accept-ranges"] == "none"


async def test_the_call_record_carries_no_etag_of_the_whip_session(
    service: RunningService,
) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        location = await _call(client)
        record = await client.get(location)
        await client.delete(location)
    assert record.status_code == 200
    assert "etag" not in record.headers
