"""Phone calls (SIP) end to end: the stand-in rings callbridge's webhook, callbridge decides.

The stand-in provider signs a `realtime.call.incoming` webhook (Standard Webhooks) and sends it
to `POST /v1/provider/webhooks`; callbridge verifies it, asks the router, and accepts, rejects
or refers the call at the stand-in with the real API's requests. An accepted call's sideband is
joined as for a WebRTC call, so handoffs work the same. The stand-in's phone-leg record shows
what reached it: the control requests, the reject status, the refer target, what the caller
heard.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from media.local_provider import (
    DenialAwareWebSocketProtocol,
    LocalProviderConfig,
    create_provider_app,
)
from media.peer import CallClient
from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.redis_server import RedisServer
from tests.e2e.sip_routers import FRONT_DESK, PIRATE
from tests.e2e.waiting import until

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
REQUEST = "please ask the background agent what is 2 plus 3"
CALLER = "sip:+14155550100@example.com"
CALLED = "sip:+18005550199@example.com"


class Phone:
    """The stand-in's phone network, driven over HTTP, and the service it rings."""

    def __init__(self, provider_url: str, service: RunningService) -> None:
        self.provider_url = provider_url
        self.service = service
        self.webhook_url = f"{service.url}/v1/provider/webhooks"

    async def ring(self, *, deliver: bool = True) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.provider_url) as client:
            response = await client.post(
                "/local/sip/ring",
                json={
                    "webhook_url": self.webhook_url,
                    "from": CALLER,
                    "to": CALLED,
                    "deliver": deliver,
                },
            )
        assert response.status_code == 201
        leg: dict[str, Any] = response.json()
        return leg

    async def leg(self, call_id: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.provider_url) as client:
            response = await client.get(f"/local/sip/calls/{call_id}")
        assert response.status_code == 200
        leg: dict[str, Any] = response.json()
        return leg

    async def say(self, call_id: str, text: str) -> None:
        async with httpx.AsyncClient(base_url=self.provider_url) as client:
            response = await client.post(f"/local/sip/calls/{call_id}/say", json={"text": text})
        assert response.status_code == 202

    async def hang_up(self, call_id: str) -> None:
        """The caller hangs up."""
        async with httpx.AsyncClient(base_url=self.provider_url) as client:
            response = await client.post(f"/local/sip/calls/{call_id}/hangup")
        assert response.status_code == 200

    async def deliver(self, headers: dict[str, str], body: str) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.post(self.webhook_url, content=body, headers=headers)

    async def joined(self, call_id: str) -> None:
        def ready() -> bool:
            session = self.service.manager.session(call_id)
            return session is not None and session.call.session_id is not None

        await until(ready)

    async def decided(self, call_id: str) -> dict[str, Any]:
        async def not_ringing() -> bool:
            return bool((await self.leg(call_id))["state"] != "ringing")

        await until(not_ringing)
        return await self.leg(call_id)


@pytest.fixture
async def phone_network(serve: Serve, start_service: StartService) -> Any:
    """Start the stand-in and a service with the given settings; return a `Phone`."""

    async def start(**overrides: Any) -> Phone:
        # Served as `callbridge provider` serves it: refused sideband joins are not errors.
        provider_url = await serve(
            create_provider_app(LocalProviderConfig(media=False, webhook_secret=SECRET)),
            ws=DenialAwareWebSocketProtocol,
        )
        service = await start_service(
            provider="openai", provider_url=provider_url, webhook_secret=SECRET, **overrides
        )
        return Phone(provider_url, service)

    return start


async def _service_record(phone: Phone, call_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=phone.service.url) as client:
        response = await client.get(f"/v1/calls/{call_id}")
    assert response.status_code == 200
    record: dict[str, Any] = response.json()
    return record


async def _metrics(phone: Phone, family: str, label: str) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=phone.service.url) as client:
        exposition = (await client.get("/metrics")).text
    return {
        sample.labels[label]: sample.value
        for metric in text_string_to_metric_families(exposition)
        if metric.name == family
        for sample in metric.samples
        if sample.name.endswith("_total")
    }


async def _calls_ended(phone: Phone, reason: str) -> float:
    return (await _metrics(phone, "callbridge_calls_ended", "reason")).get(reason, 0.0)


async def _hangup_outcomes(phone: Phone) -> dict[str, float]:
    return await _metrics(phone, "callbridge_provider_hangups", "outcome")


async def test_an_incoming_call_is_accepted_and_its_sideband_joined(phone_network: Any) -> None:
    phone: Phone = await phone_network()
    leg = await phone.ring()
    call_id = leg["call_id"]
    assert leg["webhook_status"] == 200
    await phone.joined(call_id)
    leg = await phone.leg(call_id)
    assert leg["state"] == "accepted"
    assert leg["control_requests"] == ["accept"]
    assert leg["accepted_session"]["type"] == "realtime"
    assert "session.update" in leg["call"]["client_event_types"]


async def test_a_phone_call_record_shows_its_kind_and_sip_headers(phone_network: Any) -> None:
    phone: Phone = await phone_network()
    leg = await phone.ring()
    await phone.joined(leg["call_id"])
    record = await _service_record(phone, leg["call_id"])
    call_header = next(h["value"] for h in leg["sip_headers"] if h["name"] == "Call-ID")
    assert record["kind"] == "sip"
    assert record["sip_headers"] == {"From": CALLER, "To": CALLED, "Call-ID": call_header}


async def test_a_phone_callers_handoff_is_answered_and_the_answer_delivered(
    phone_network: Any,
) -> None:
    phone: Phone = await phone_network()
    call_id = (await phone.ring())["call_id"]
    await phone.joined(call_id)
    await phone.say(call_id, REQUEST)

    async def answered() -> bool:
        return any("2 + 3 = 5" in said for said in (await phone.leg(call_id))["heard"])

    async def delivered() -> bool:
        handoffs = (await _service_record(phone, call_id))["handoffs"]
        return bool(handoffs) and handoffs[0]["delivered_to_model"]

    # The caller may hear the answer a moment before our sideband reads `response.created`.
    await until(answered)
    await until(delivered)
    record = await _service_record(phone, call_id)
    handoff = record["handoffs"][0]
    assert handoff["request"] == REQUEST
    assert handoff["state"] == "completed"
    tool_call_id = handoff["tool_call_id"]
    assert (await phone.leg(call_id))["call"]["function_call_outputs"] == {tool_call_id: 1}


async def test_a_call_the_router_rejects_gets_its_status_at_the_provider(
    phone_network: Any,
) -> None:
    phone: Phone = await phone_network(sip_router="tests.e2e.sip_routers:busy")
    leg = await phone.decided((await phone.ring())["call_id"])
    assert (leg["state"], leg["reject_status_code"]) == ("rejected", 486)
    assert phone.service.manager.get(leg["call_id"]) is None


async def test_a_router_that_cannot_decide_rejects_the_call_as_unavailable(
    phone_network: Any,
) -> None:
    phone: Phone = await phone_network(sip_router="tests.e2e.sip_routers:undecided")
    leg = await phone.decided((await phone.ring())["call_id"])
    assert (leg["state"], leg["reject_status_code"]) == ("rejected", 480)


async def test_a_router_that_does_not_decide_in_time_is_logged_naming_the_call(
    phone_network: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="callbridge.sip")
    phone: Phone = await phone_network(
        sip_router="tests.e2e.sip_routers:dawdling", sip_router_timeout_s=0.2
    )
    leg = await phone.decided((await phone.ring())["call_id"])
    assert (leg["state"], leg["reject_status_code"]) == ("rejected", 480)
    [line] = [r for r in caplog.records if r.name == "callbridge.sip"]
    assert line.getMessage() == "SIP router did not decide within 0.2 s, rejecting"
    assert getattr(line, "call_id", None) == leg["call_id"]


@pytest.mark.parametrize("router", ["exits", "cancels_itself"])
async def test_a_router_raising_what_is_not_an_exception_rejects_the_call_as_unavailable(
    phone_network: Any, router: str
) -> None:
    phone: Phone = await phone_network(sip_router=f"tests.e2e.sip_routers:{router}")
    for _ in range(2):
        leg = await phone.decided((await phone.ring())["call_id"])
        assert (leg["state"], leg["reject_status_code"]) == ("rejected", 480)


async def test_a_router_refers_a_call_to_its_target(phone_network: Any) -> None:
    phone: Phone = await phone_network(sip_router="tests.e2e.sip_routers:front_desk")
    leg = await phone.decided((await phone.ring())["call_id"])
    assert (leg["state"], leg["refer_target_uri"]) == ("referred", FRONT_DESK)
    assert leg["control_requests"] == ["refer"]


async def test_a_router_accepts_with_session_overrides(phone_network: Any) -> None:
    phone: Phone = await phone_network(sip_router="tests.e2e.sip_routers:pirate")
    call_id = (await phone.ring())["call_id"]
    await phone.joined(call_id)
    leg = await phone.leg(call_id)
    assert leg["accepted_session"]["instructions"] == PIRATE
    assert (await _service_record(phone, call_id))["session"]["instructions"] == PIRATE


async def test_refer_transfers_an_answered_phone_call(phone_network: Any) -> None:
    phone: Phone = await phone_network()
    call_id = (await phone.ring())["call_id"]
    await phone.joined(call_id)
    async with httpx.AsyncClient(base_url=phone.service.url) as client:
        response = await client.post(f"/v1/calls/{call_id}/refer", json={"target_uri": FRONT_DESK})
    assert response.status_code == 202
    leg = await phone.leg(call_id)
    assert (leg["state"], leg["refer_target_uri"]) == ("referred", FRONT_DESK)

    async def ended() -> bool:
        return (await _service_record(phone, call_id))["state"] in ("ended", "failed")

    await until(ended)
    assert (await _service_record(phone, call_id))["transferred_to"] == FRONT_DESK


async def test_refer_refuses_a_target_that_is_not_a_tel_or_sip_uri(phone_network: Any) -> None:
    phone: Phone = await phone_network()
    call_id = (await phone.ring())["call_id"]
    await phone.joined(call_id)
    async with httpx.AsyncClient(base_url=phone.service.url) as client:
        response = await client.post(
            f"/v1/calls/{call_id}/refer", json={"target_uri": "https://example.com"}
        )
    assert response.status_code == 422
    assert (await phone.leg(call_id))["control_requests"] == ["accept"]


async def test_hangup_ends_a_phone_call_at_the_provider(phone_network: Any) -> None:
    phone: Phone = await phone_network()
    call_id = (await phone.ring())["call_id"]
    await phone.joined(call_id)
    async with httpx.AsyncClient(base_url=phone.service.url) as client:
        assert (await client.post(f"/v1/calls/{call_id}/hangup")).status_code == 200
    assert (await phone.leg(call_id))["call"]["state"] == "ended"
    assert (await _service_record(phone, call_id))["end_reason"] == "hangup"


async def _answered_then_hung_up_by_the_caller(phone: Phone) -> str:
    """Ring `phone`'s service, wait until it listens, then have the caller hang up; the call
    id once the service's session has ended."""
    call_id: str = (await phone.ring())["call_id"]
    await phone.joined(call_id)
    session = phone.service.manager.session(call_id)
    assert session is not None
    await phone.hang_up(call_id)
    await asyncio.wait_for(session.wait_ended(), 10)
    return call_id


async def test_a_caller_hanging_up_ends_the_call_as_a_remote_hangup_logged_at_info(
    phone_network: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    phone: Phone = await phone_network()
    call_id = await _answered_then_hung_up_by_the_caller(phone)
    record = await _service_record(phone, call_id)
    assert (record["state"], record["end_reason"]) == ("ended", "remote_hangup")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any(
        r.levelno == logging.INFO and "call ending: remote_hangup" in r.getMessage()
        for r in caplog.records
    )


async def test_after_the_caller_hung_up_the_provider_no_longer_knows_the_call(
    phone_network: Any,
) -> None:
    phone: Phone = await phone_network()
    call_id = (await phone.ring())["call_id"]
    await phone.joined(call_id)
    await phone.hang_up(call_id)
    leg = await phone.leg(call_id)
    async with httpx.AsyncClient(base_url=phone.provider_url) as client:
        hangup = await client.post(f"/v1/realtime/calls/{call_id}/hangup")
    sideband = phone.provider_url.replace("http://", "ws://") + f"/v1/realtime?call_id={call_id}"
    with pytest.raises(InvalidStatus) as join:
        async with connect(sideband):
            pass
    assert (leg["state"], leg["call"]["state"]) == ("hung_up", "ended")
    assert (hangup.status_code, hangup.json()["error"]["code"]) == (404, "call_id_not_found")
    assert join.value.response.status_code == 404


async def test_only_an_answered_caller_can_hang_up(phone_network: Any) -> None:
    phone: Phone = await phone_network()
    call_id = (await phone.ring(deliver=False))["call_id"]
    async with httpx.AsyncClient(base_url=phone.provider_url) as client:
        response = await client.post(f"/local/sip/calls/{call_id}/hangup")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_call_state")


async def test_a_remote_hangup_is_counted_under_its_own_end_reason(phone_network: Any) -> None:
    phone: Phone = await phone_network()
    before = await _calls_ended(phone, "remote_hangup")
    await _answered_then_hung_up_by_the_caller(phone)
    assert await _calls_ended(phone, "remote_hangup") == before + 1


async def test_a_caller_hanging_up_leaves_no_hang_up_to_do_at_the_provider(
    phone_network: Any,
) -> None:
    phone: Phone = await phone_network()
    call_id = (await phone.ring())["call_id"]
    await phone.joined(call_id)
    session = phone.service.manager.session(call_id)
    assert session is not None
    before = await _hangup_outcomes(phone)
    await phone.hang_up(call_id)
    await asyncio.wait_for(session.wait_ended(), 10)
    async with httpx.AsyncClient(base_url=phone.service.url) as client:
        hung_up = await client.post(f"/v1/calls/{call_id}/hangup")
    assert (hung_up.status_code, hung_up.json()["end_reason"]) == (200, "remote_hangup")
    assert await _hangup_outcomes(phone) == before
    assert phone.service.manager.hangups.retrying == frozenset()


async def test_a_webhook_with_a_bad_signature_is_refused_and_changes_nothing(
    phone_network: Any,
) -> None:
    phone: Phone = await phone_network()
    leg = await phone.ring(deliver=False)
    headers, body = leg["webhook"]["headers"], leg["webhook"]["body"]
    forged = body.replace(CALLER, "sip:+19995550100@example.com")
    response = await phone.deliver(headers, forged)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    await asyncio.sleep(0.2)
    assert (await phone.leg(leg["call_id"]))["control_requests"] == []
    assert phone.service.manager.get(leg["call_id"]) is None


async def test_a_webhook_with_a_stale_timestamp_is_refused_and_changes_nothing(
    phone_network: Any,
) -> None:
    phone: Phone = await phone_network()
    leg = await phone.ring(deliver=False)
    headers, body = dict(leg["webhook"]["headers"]), leg["webhook"]["body"]
    stale = datetime.now(UTC) - timedelta(minutes=6)
    headers["webhook-timestamp"] = str(int(stale.timestamp()))
    headers["webhook-signature"] = Webhook(SECRET).sign(headers["webhook-id"], stale, body)
    response = await phone.deliver(headers, body)
    assert response.status_code == 401
    await asyncio.sleep(0.2)
    assert (await phone.leg(leg["call_id"]))["control_requests"] == []
    assert phone.service.manager.get(leg["call_id"]) is None


async def test_a_replayed_webhook_is_refused_and_changes_nothing(phone_network: Any) -> None:
    phone: Phone = await phone_network()
    leg = await phone.ring(deliver=False)
    headers, body = leg["webhook"]["headers"], leg["webhook"]["body"]
    assert (await phone.deliver(headers, body)).status_code == 200
    await phone.joined(leg["call_id"])
    replay = await phone.deliver(headers, body)
    assert replay.status_code == 400
    assert replay.headers["content-type"] == "application/problem+json"
    await asyncio.sleep(0.2)
    assert (await phone.leg(leg["call_id"]))["control_requests"] == ["accept"]
    assert [c.call_id for c in phone.service.manager.active()] == [leg["call_id"]]


async def test_a_webhook_replayed_to_another_instance_is_refused_there(
    phone_network: Any, start_service: StartService, redis_server: RedisServer
) -> None:
    phone: Phone = await phone_network(queue=redis_server.url, instance_id="a")
    other = await start_service(
        provider="openai",
        provider_url=phone.provider_url,
        webhook_secret=SECRET,
        queue=redis_server.url,
        instance_id="b",
    )
    leg = await phone.ring(deliver=False)
    headers, body = leg["webhook"]["headers"], leg["webhook"]["body"]
    assert (await phone.deliver(headers, body)).status_code == 200
    await phone.joined(leg["call_id"])
    async with httpx.AsyncClient() as client:
        replay = await client.post(
            f"{other.url}/v1/provider/webhooks", content=body, headers=headers
        )
    assert (replay.status_code, replay.json()["type"]) == (
        400,
        "https://callbridge.dev/problems/webhook-replayed",
    )
    await asyncio.sleep(0.2)
    assert (await phone.leg(leg["call_id"]))["control_requests"] == ["accept"]


async def test_a_forged_delivery_does_not_block_the_genuine_one(phone_network: Any) -> None:
    phone: Phone = await phone_network()
    leg = await phone.ring(deliver=False)
    headers, body = leg["webhook"]["headers"], leg["webhook"]["body"]
    assert (await phone.deliver(headers, body + " ")).status_code == 401
    assert (await phone.deliver(headers, body)).status_code == 200
    await phone.joined(leg["call_id"])


async def test_webhooks_are_not_found_without_a_secret(start_service: StartService) -> None:
    service = await start_service()
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post("/v1/provider/webhooks", content=json.dumps({}))
    assert response.status_code == 404


async def test_refer_is_refused_for_a_webrtc_call(start_service: StartService) -> None:
    service = await start_service()
    async with CallClient(f"{service.url}/v1/calls") as call:
        assert call.location is not None
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{call.location}/refer", json={"target_uri": FRONT_DESK})
    assert response.status_code == 409
    assert response.json()["type"].endswith("/not-a-phone-call")


async def test_the_webhook_is_answered_before_an_http_router_decides(
    serve: Serve, phone_network: Any
) -> None:
    release = asyncio.Event()
    asked: list[dict[str, Any]] = []
    router_app = FastAPI()

    @router_app.post("/route")
    async def route(request: Request) -> dict[str, Any]:
        asked.append(await request.json())
        await release.wait()
        return {"action": "reject", "status_code": 404}

    router_url = await serve(router_app)
    phone: Phone = await phone_network(sip_router=f"{router_url}/route")
    leg = await phone.ring()
    assert leg["webhook_status"] == 200
    await until(lambda: bool(asked))
    assert (await phone.leg(leg["call_id"]))["state"] == "ringing"
    release.set()
    leg = await phone.decided(leg["call_id"])
    assert (leg["state"], leg["reject_status_code"]) == ("rejected", 404)
    assert asked[0]["call_id"] == leg["call_id"]
    assert asked[0]["sip_headers"]["From"] == CALLER


def _signed(body: str) -> dict[str, str]:
    webhook_id = f"wh_{secrets.token_hex(8)}"
    now = datetime.now(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(webhook_id, now, body),
        "content-type": "application/json",
    }


async def test_a_signed_webhook_nesting_too_deeply_is_refused_as_malformed(
    phone_network: Any,
) -> None:
    phone: Phone = await phone_network()
    leg = await phone.ring(deliver=False)
    event = json.loads(leg["webhook"]["body"])
    deep = "[" * 20_000 + "]" * 20_000
    body = json.dumps(event).replace('"sip_headers": [', f'"sip_headers": [{deep}, ', 1)
    assert deep in body
    response = await phone.deliver(_signed(body), body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_webhook_id_too_long_to_remember_is_refused_as_malformed(
    phone_network: Any,
) -> None:
    phone: Phone = await phone_network()
    leg = await phone.ring(deliver=False)
    body = leg["webhook"]["body"]
    headers = _signed(body)
    now = datetime.now(UTC)
    headers["webhook-id"] = "wh_" + "x" * 60_000
    headers["webhook-signature"] = Webhook(SECRET).sign(headers["webhook-id"], now, body)
    headers["webhook-timestamp"] = str(int(now.timestamp()))
    response = await phone.deliver(headers, body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert phone.service.manager.get(leg["call_id"]) is None
