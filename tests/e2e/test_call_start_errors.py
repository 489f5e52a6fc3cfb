"""Each error path of call start answers problem+json with the right status and leaves no call."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.faulty_provider import Behaviour, FaultyProvider
from tests.unit.sdp_samples import AIORTC_OFFER

PROBLEM = "application/problem+json"


async def _service_with(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> RunningService:
    url = await serve(provider.app())
    return await start_service(
        provider="openai",
        provider_url=url,
        api_key="sk-fault-test",
        provider_timeout_s=0.5,
        sideband_max_attempts=1,
    )


async def _post_offer(service: RunningService, body: bytes | str, **headers: str) -> httpx.Response:
    headers.setdefault("content-type", "application/sdp")
    async with httpx.AsyncClient(base_url=service.url) as client:
        return await client.post("/v1/calls", content=body, headers=headers)


def _assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["detail"]


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        ("error500", 502),
        ("timeout", 504),
        ("no_location", 502),
        ("bad_location", 502),
        ("not_utf8", 502),
    ],
)
async def test_provider_failure_maps_to_gateway_status_and_registers_no_call(
    start_service: StartService, serve: Serve, behaviour: Behaviour, status: int
) -> None:
    provider = FaultyProvider(script=[behaviour], delay_s=3.0)
    service = await _service_with(start_service, serve, provider)
    response = await _post_offer(service, AIORTC_OFFER)
    _assert_problem(response, status)
    assert service.manager.active() == []
    assert service.manager.capacity_left == service.manager.settings.max_calls


async def test_provider_error_message_is_passed_on(
    start_service: StartService, serve: Serve
) -> None:
    provider = FaultyProvider(script=["error500"])
    service = await _service_with(start_service, serve, provider)
    body = (await _post_offer(service, AIORTC_OFFER)).json()
    assert "upstream exploded" in body["detail"]
    assert body["provider_status"] == 500


async def test_malformed_offer_is_rejected_before_the_provider_is_called(
    start_service: StartService, serve: Serve
) -> None:
    provider = FaultyProvider()
    service = await _service_with(start_service, serve, provider)
    _assert_problem(await _post_offer(service, "v=0\r\nthis is not sdp\r\n"), 400)
    assert provider.created == []


async def test_offer_without_audio_is_unprocessable(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service_with(start_service, serve, FaultyProvider())
    no_audio = AIORTC_OFFER.replace("m=audio", "m=video")
    _assert_problem(await _post_offer(service, no_audio), 422)


async def test_oversized_offer_is_refused_from_its_declared_length(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service_with(start_service, serve, FaultyProvider())
    _assert_problem(await _post_offer(service, b"v" * 70_000), 413)


async def test_oversized_chunked_offer_is_refused_while_streaming(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service_with(start_service, serve, FaultyProvider())

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"a=x\r\n" * 200

    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls", content=chunks(), headers={"content-type": "application/sdp"}
        )
    _assert_problem(response, 413)


async def test_wrong_content_type_is_unsupported(start_service: StartService, serve: Serve) -> None:
    service = await _service_with(start_service, serve, FaultyProvider())
    response = await _post_offer(service, "{}", **{"content-type": "application/json"})
    _assert_problem(response, 415)
    assert "application/sdp" in response.headers["accept-post"]


async def test_sideband_that_cannot_be_joined_hangs_the_call_up(
    start_service: StartService, serve: Serve
) -> None:
    provider = FaultyProvider(refuse_sideband=5)
    service = await _service_with(start_service, serve, provider)
    response = await _post_offer(service, AIORTC_OFFER)
    assert response.status_code == 201
    call_id = response.headers["location"].rsplit("/", 1)[1]
    session = service.manager.session(call_id)
    if session is not None:
        await session.wait_ended()
    assert provider.hangups == [call_id]
    call = service.manager.get(call_id)
    assert call is not None
    assert call.state == "failed"
    assert call.end_reason == "sideband_unavailable"


async def test_unknown_call_is_not_found(start_service: StartService, serve: Serve) -> None:
    service = await _service_with(start_service, serve, FaultyProvider())
    async with httpx.AsyncClient(base_url=service.url) as client:
        for response in (
            await client.get("/v1/calls/rtc_nope"),
            await client.delete("/v1/calls/rtc_nope"),
            await client.get("/v1/calls/..%2F..%2Fetc"),
        ):
            _assert_problem(response, 404)
