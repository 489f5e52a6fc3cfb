"""A SIP router given as a URL: one client for all its decisions."""

from __future__ import annotations

from service.calls.sip_router import Accept, IncomingCall, load_router
from signaling.ids import CallId
from tests.e2e.conftest import Serve
from tests.e2e.endpoints import recording_endpoint


async def test_a_url_routers_decisions_share_one_connection(serve: Serve) -> None:
    app, peers = recording_endpoint("/route", {"action": "accept"})
    router = load_router(f"{await serve(app)}/route")
    decisions = [await router(IncomingCall(CallId(f"rtc_{n}"))) for n in range(3)]
    assert decisions == [Accept()] * 3
    assert len(set(peers)) == 1
