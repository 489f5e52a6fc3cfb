"""Hostile JSON bodies and headers get 400 problem+json; the call keeps working meanwhile."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import LiveCall, RunningService, StartService
from tests.e2e.hostile import RawConnection, assert_problem, healthy, request_head
from tests.unit.sdp_samples import AIORTC_OFFER


async def _post_json(service: RunningService, path: str, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=service.url) as client:
        return await client.post(path, content=body, headers={"content-type": "application/json"})


async def _assert_call_still_takes_messages(service: RunningService, location: str) -> None:
    assert await healthy(service.url)
    response = await _post_json(service, f"{location}/messages", b'{"text": "still here"}')
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("path", ["/messages", "/session"])
async def test_json_nested_thirty_thousand_deep_is_a_400(live_call: LiveCall, path: str) -> None:
    service, location = live_call.service, live_call.location
    response = await _post_json(service, location + path, b"[" * 30_000 + b"]" * 30_000)
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 400)
    await _assert_call_still_takes_messages(service, location)


async def test_json_integer_of_five_thousand_digits_is_a_400(
    live_call: LiveCall,
) -> None:
    service, location = live_call.service, live_call.location
    body = b'{"text": "x", "n": ' + b"9" * 5000 + b"}"
    response = await _post_json(service, f"{location}/messages", body)
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 400)
    await _assert_call_still_takes_messages(service, location)


async def test_deep_json_in_the_session_part_of_a_call_start_is_a_400(
    start_service: StartService,
) -> None:
    service = await start_service(local_media=False)
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls",
            files={
                "sdp": (None, AIORTC_OFFER.encode(), "application/sdp"),
                "session": (None, b"{" * 20_000, "application/json"),
            },
        )
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 400)
    assert service.manager.active() == []


@pytest.mark.parametrize("last_event_id", ["\u00b2", "9" * 5000, "-1", "1e3"])
async def test_a_last_event_id_that_is_not_one_of_ours_is_a_400(
    live_call: LiveCall, last_event_id: str
) -> None:
    service, location = live_call.service, live_call.location
    connection = await RawConnection.open(service.url)
    try:
        await connection.send(
            request_head("GET", f"{location}/events", {"Last-Event-ID": last_event_id})
        )
        response = await connection.response()
    finally:
        await connection.close()
    assert_problem(response.status, response.headers["content-type"], response.json(), 400)
    await _assert_call_still_takes_messages(service, location)


async def test_a_bearer_token_with_non_ascii_characters_is_a_401(
    start_service: StartService,
) -> None:
    service = await start_service(call_token_secret="s3cret", api_tokens="tok")
    forged = "cbt1.9999999999.abc.\u00e9\u00e9\u00e9"
    connection = await RawConnection.open(service.url)
    try:
        await connection.send(
            request_head("GET", "/v1/calls/rtc_x", {"Authorization": f"Bearer {forged}"})
        )
        response = await connection.response()
    finally:
        await connection.close()
    assert_problem(response.status, response.headers["content-type"], response.json(), 401)
    assert await healthy(service.url)
