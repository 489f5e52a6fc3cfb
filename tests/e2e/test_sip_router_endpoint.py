"""A SIP router given as a URL: one client for all its decisions, closed with its owner."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from service.calls.sip_router import Accept, IncomingCall, RouterError, load_router
from service.outbound_http import HoldsConnections
from signaling.ids import CallId
from tests.e2e.conftest import Serve
from tests.e2e.endpoints import json_endpoint
from tests.e2e.waiting import until


async def test_a_url_routers_decisions_share_one_connection() -> None:
    async with json_endpoint({"action": "accept"}) as (url, endpoint):
        router = load_router(url)
        decisions = [await router(IncomingCall(CallId(f"rtc_{n}"))) for n in range(3)]
        assert isinstance(router, HoldsConnections)
        await router.aclose()
    assert decisions == [Accept()] * 3
    assert endpoint.accepted == 1


async def test_closing_a_url_router_closes_its_connections() -> None:
    async with json_endpoint({"action": "accept"}) as (url, endpoint):
        router = load_router(url)
        await router(IncomingCall(CallId("rtc_1")))
        assert len(endpoint.open) == 1
        assert isinstance(router, HoldsConnections)
        await router.aclose()
        await until(lambda: not endpoint.open, timeout_s=5)


async def test_a_url_router_answering_json_nested_too_deeply_cannot_decide() -> None:
    async with json_endpoint(b"[" * 20_000 + b"]" * 20_000) as (url, _):
        router = load_router(url)
        with pytest.raises(RouterError, match="no JSON"):
            await router(IncomingCall(CallId("rtc_1")))
        assert isinstance(router, HoldsConnections)
        await router.aclose()


async def test_a_url_router_answering_a_redirect_cannot_decide_and_says_so(serve: Serve) -> None:
    app = FastAPI()

    @app.post("/route")
    async def route() -> RedirectResponse:
        return RedirectResponse("/elsewhere", status_code=307)

    @app.post("/elsewhere")
    async def elsewhere() -> dict[str, str]:
        return {"action": "accept"}

    router = load_router(f"{await serve(app)}/route")
    with pytest.raises(RouterError, match="307"):
        await router(IncomingCall(CallId("rtc_1")))
    assert isinstance(router, HoldsConnections)
    await router.aclose()
