"""A hostile or refusing provider: bounded waits, and statuses that say whose fault it is."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.hostile import assert_problem, healthy
from tests.unit.sdp_samples import AIORTC_OFFER, FIREFOX_MAX_BUNDLE

ANSWER = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def _provider(answer: Response | None = None) -> tuple[Starlette, asyncio.Event]:
    """A provider whose call creation answers `answer`, or trickles one byte at a time."""
    trickling = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        for byte in ANSWER:
            trickling.set()
            yield bytes([byte])
            await asyncio.sleep(0.2)

    async def create(request: Request) -> Response:
        await request.body()
        if answer is not None:
            return answer
        return StreamingResponse(
            trickle(),
            status_code=201,
            media_type="application/sdp",
            headers={"Location": "/v1/realtime/calls/rtc_trickle"},
        )

    return Starlette(routes=[Route("/v1/realtime/calls", create, methods=["POST"])]), trickling


async def _service(start_service: StartService, serve: Serve, app: Starlette) -> RunningService:
    return await start_service(
        provider="openai",
        provider_url=await serve(app),
        api_key="sk-hostile-provider",
        provider_timeout_s=0.5,
        sideband_max_attempts=1,
    )


def _error(status: int, message: str, code: str | None, **headers: str) -> Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return Response(
        json.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


async def _start(service: RunningService) -> httpx.Response:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        return await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
        )


async def test_a_provider_trickling_its_answer_is_cut_off_at_the_total_deadline(
    start_service: StartService, serve: Serve
) -> None:
    app, trickling = _provider()
    service = await _service(start_service, serve, app)
    start = asyncio.create_task(_start(service))
    await trickling.wait()
    assert await healthy(service.url)
    response = await start
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 504)
    assert service.manager.active() == []
    assert service.manager.capacity_left == service.manager.settings.max_calls


async def test_a_provider_refusing_the_offer_is_a_422_with_its_message(
    start_service: StartService, serve: Serve
) -> None:
    app, _ = _provider(_error(400, "The SDP offer has no usable codec", "invalid_offer"))
    service = await _service(start_service, serve, app)
    response = await _start(service)
    body = response.json()
    assert_problem(response.status_code, response.headers["content-type"], body, 422)
    assert "no usable codec" in body["detail"]
    assert body["provider_code"] == "invalid_offer"


@pytest.mark.parametrize("status", [401, 403])
async def test_a_provider_refusing_our_key_stays_a_bad_gateway(
    start_service: StartService, serve: Serve, status: int
) -> None:
    app, _ = _provider(_error(status, "Incorrect API key provided", "invalid_api_key"))
    service = await _service(start_service, serve, app)
    response = await _start(service)
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 502)


async def test_a_provider_4xx_about_something_else_than_the_offer_stays_a_bad_gateway(
    start_service: StartService, serve: Serve
) -> None:
    app, _ = _provider(_error(400, "Unknown parameter: 'session.foo'", "unknown_parameter"))
    service = await _service(start_service, serve, app)
    response = await _start(service)
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 502)


async def test_a_rate_limited_provider_is_a_503_with_its_retry_after(
    start_service: StartService, serve: Serve
) -> None:
    app, _ = _provider(
        _error(429, "Rate limit reached", "rate_limit_exceeded", **{"Retry-After": "42"})
    )
    service = await _service(start_service, serve, app)
    response = await _start(service)
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 503)
    assert response.headers["retry-after"] == "42"


async def test_a_rate_limited_provider_asking_for_an_absurd_wait_is_capped(
    start_service: StartService, serve: Serve
) -> None:
    huge = "9" * 5000
    app, _ = _provider(_error(429, "Rate limit reached", None, **{"Retry-After": huge}))
    service = await _service(start_service, serve, app)
    response = await _start(service)
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 503)
    assert response.headers["retry-after"].isdigit()
    assert int(response.headers["retry-after"]) <= 3600


async def test_a_provider_flooding_its_answer_is_cut_off_at_the_size_cap(
    start_service: StartService, serve: Serve
) -> None:
    flood = Response(
        ANSWER + b"a=x-flood:" + b"x" * (2 << 20) + b"\r\n",
        status_code=201,
        media_type="application/sdp",
        headers={"Location": "/v1/realtime/calls/rtc_flood"},
    )
    app, _ = _provider(flood)
    service = await _service(start_service, serve, app)
    response = await _start(service)
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 502)
    assert service.manager.active() == []


async def test_a_bundle_only_audio_offer_is_forwarded_to_the_provider_unchanged(
    start_service: StartService, serve: Serve
) -> None:
    received: list[bytes] = []

    async def create(request: Request) -> Response:
        received.append(await request.body())
        return Response(
            ANSWER,
            status_code=201,
            media_type="application/sdp",
            headers={"Location": "/v1/realtime/calls/rtc_bundled"},
        )

    app = Starlette(routes=[Route("/v1/realtime/calls", create, methods=["POST"])])
    service = await _service(start_service, serve, app)
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        response = await client.post(
            "/v1/calls", content=FIREFOX_MAX_BUNDLE, headers={"content-type": "application/sdp"}
        )
    assert response.status_code == 201, response.text
    assert response.content == ANSWER
    # The offer travels as the `sdp` part of the provider's multipart body, byte for byte.
    assert len(received) == 1
    assert b"\r\n\r\n" + FIREFOX_MAX_BUNDLE.encode() + b"\r\n--" in received[0]


async def test_a_provider_error_body_nested_deeper_than_the_stack_is_still_a_bad_gateway(
    start_service: StartService, serve: Serve
) -> None:
    deep = Response(b"[" * 1999 + b"]", status_code=500, media_type="application/json")
    app, _ = _provider(deep)
    service = await _service(start_service, serve, app)
    response = await _start(service)
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 502)
