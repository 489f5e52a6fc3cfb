"""Auth, call tokens, rate limits, capacity, body limits, CORS and WHIP behaviour, over HTTP."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from service.auth import mint_call_token
from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.hostile import PROBLEM, assert_problem
from tests.e2e.processes import free_port
from tests.unit.sdp_samples import AIORTC_OFFER

SDP = {"content-type": "application/sdp"}
PROBLEM_SCHEMA = {"$ref": "#/components/schemas/ProblemDetails"}


async def _service(start_service: StartService, serve: Serve, **settings: object) -> RunningService:
    provider_url = await serve(FaultyProvider().app())
    return await start_service(
        provider="openai", provider_url=provider_url, api_key="sk-access", **settings
    )


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _start(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await client.post("/v1/calls", content=AIORTC_OFFER, headers={**SDP, **headers})


async def test_call_start_without_a_token_is_unauthorized_with_a_bearer_challenge(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(start_service, serve, api_tokens="tok-a,tok-b")
    async with httpx.AsyncClient(base_url=service.url) as client:
        for headers in ({}, _bearer("tok-wrong"), {"authorization": "Basic dG9rLWE="}):
            response = await _start(client, **headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.headers["content-type"].startswith("application/problem+json")


async def test_the_challenge_says_invalid_token_only_when_a_bearer_token_was_sent(
    start_service: StartService, serve: Serve
) -> None:
    # RFC 6750 §3: no error code for a request without a token, `invalid_token` (§3.1) for one
    # whose token is not valid; for the API tokens as for the ops token.
    service = await _service(start_service, serve, api_tokens="tok-a", ops_token="ops-1")
    async with httpx.AsyncClient(base_url=service.url) as client:
        for path in ("/v1/calls/rtc_0123456789abcdef", "/metrics"):
            missing = await client.get(path)
            invalid = await client.get(path, headers=_bearer("tok-wrong"))
            assert missing.headers["www-authenticate"] == 'Bearer realm="callbridge"', path
            assert invalid.status_code == 401, path
            assert invalid.headers["www-authenticate"] == (
                'Bearer realm="callbridge", error="invalid_token"'
            ), path


async def test_any_configured_api_token_starts_and_controls_a_call(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(start_service, serve, api_tokens="tok-a,tok-b")
    async with httpx.AsyncClient(base_url=service.url) as client:
        started = await _start(client, **_bearer("tok-b"))
        assert started.status_code == 201
        location = started.headers["location"]
        assert (await client.get(location, headers=_bearer("tok-a"))).status_code == 200
        assert (await client.get(location)).status_code == 401
        assert (await client.delete(location, headers=_bearer("tok-a"))).status_code == 200


async def test_health_endpoints_stay_open_and_ops_endpoints_need_the_ops_token(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(start_service, serve, api_tokens="tok-a", ops_token="ops-1")
    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=_bearer("tok-a"))).status_code == 401
        assert (await client.get("/v1/calls", headers=_bearer("tok-a"))).status_code == 401
        metrics = await client.get("/metrics", headers=_bearer("ops-1"))
        assert metrics.status_code == 200
        assert "callbridge_active_calls" in metrics.text
        assert (await client.get("/v1/calls", headers=_bearer("ops-1"))).status_code == 200


async def test_call_token_starts_a_call_and_controls_only_its_own_calls(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(
        start_service, serve, api_tokens="tok-a", call_token_secret="hmac-secret"
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        minted = await client.post("/v1/call-tokens", headers=_bearer("tok-a"))
        assert minted.status_code == 201
        browser = minted.json()["token"]
        other = (await _start(client, **_bearer("tok-a"))).headers["location"]
        mine = await _start(client, **_bearer(browser))
        assert mine.status_code == 201
        assert (await client.get(mine.headers["location"], headers=_bearer(browser))).is_success
        assert (await client.get(other, headers=_bearer(browser))).status_code == 404
        assert (await client.post("/v1/call-tokens", headers=_bearer(browser))).status_code == 403
        tampered = browser[:-2] + ("AA" if not browser.endswith("AA") else "BB")
        assert (await _start(client, **_bearer(tampered))).status_code == 401


@pytest.mark.parametrize("blank", ["", "  "], ids=["empty", "spaces"])
async def test_a_blank_call_token_secret_enables_no_call_tokens(
    start_service: StartService, serve: Serve, blank: str
) -> None:
    service = await _service(start_service, serve, api_tokens="tok-a", call_token_secret=blank)
    # What anyone could sign if the blank value were taken as the HMAC key.
    forged, _ = mint_call_token(blank.encode(), 300, time.time())
    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (await client.post("/v1/call-tokens", headers=_bearer("tok-a"))).status_code == 404
        assert (await _start(client, **_bearer(forged))).status_code == 401


@pytest.mark.parametrize("blank", ["", "  "], ids=["empty", "spaces"])
async def test_a_blank_ops_token_leaves_the_ops_endpoints_open_as_unset(
    start_service: StartService, serve: Serve, blank: str
) -> None:
    service = await _service(start_service, serve, api_tokens="tok-a", ops_token=blank)
    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (await client.get("/metrics")).status_code == 200


async def test_call_starts_over_the_rate_limit_get_429_with_retry_after(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(start_service, serve, rate_limit_burst=2, rate_limit_per_minute=1.0)
    async with httpx.AsyncClient(base_url=service.url) as client:
        statuses = [(await _start(client)).status_code for _ in range(3)]
        limited = await _start(client)
    assert statuses == [201, 201, 429]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


async def test_concurrent_starts_never_exceed_the_call_cap(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(start_service, serve, max_calls=3, rate_limit_burst=100)
    async with httpx.AsyncClient(base_url=service.url) as client:
        responses = await asyncio.gather(*(_start(client) for _ in range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [503] * 5
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"]
    assert len(service.manager.active()) == 3


async def test_message_text_over_the_limit_is_refused(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(start_service, serve)
    async with httpx.AsyncClient(base_url=service.url) as client:
        location = (await _start(client)).headers["location"]
        too_long = await client.post(f"{location}/messages", json={"text": "x" * 4097})
        too_big = await client.post(
            f"{location}/messages",
            content=b'{"text": "' + b"y" * 70_000 + b'"}',
            headers={"content-type": "application/json"},
        )
        bad_shape = await client.post(f"{location}/messages", json={"txt": "hi"})
    assert too_long.status_code == 413
    assert too_big.status_code == 413
    assert bad_shape.status_code == 422


async def test_cors_preflight_allows_configured_origins_and_exposes_whip_headers(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(start_service, serve, cors_origins="https://app.example")
    preflight = {
        "origin": "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization",
    }
    async with httpx.AsyncClient(base_url=service.url) as client:
        allowed = await client.options("/v1/calls", headers=preflight)
        denied = await client.options(
            "/v1/calls", headers={**preflight, "origin": "https://evil.example"}
        )
        started = await _start(client, origin="https://app.example")
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "application/sdp" in allowed.headers["accept-post"]
    assert "access-control-allow-origin" not in denied.headers
    exposed = started.headers["access-control-expose-headers"].lower()
    assert {"location", "etag", "link"} <= {h.strip() for h in exposed.split(",")}


PREFLIGHT = {
    "origin": "https://app.example",
    "access-control-request-method": "POST",
    "access-control-request-headers": "content-type, authorization",
}
"""A browser's preflight for a call start from the origin the services below allow."""


async def test_an_allowed_cors_preflight_is_a_204_with_what_is_allowed(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(start_service, serve, cors_origins="https://app.example")
    async with httpx.AsyncClient(base_url=service.url) as client:
        allowed = await client.options("/v1/calls", headers=PREFLIGHT)
    assert (allowed.status_code, allowed.content) == (204, b"")
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in allowed.headers["access-control-allow-methods"]


async def test_an_origin_configured_with_a_trailing_slash_is_allowed(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(start_service, serve, cors_origins="https://App.example/")
    async with httpx.AsyncClient(base_url=service.url) as client:
        allowed = await client.options("/v1/calls", headers=PREFLIGHT)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"


@pytest.mark.parametrize(
    ("asked", "named"),
    [
        ({"origin": "https://evil.example"}, "origin https://evil.example"),
        ({"access-control-request-method": "PUT"}, "method PUT"),
        ({"access-control-request-headers": "content-type, X-Evil"}, 'header "X-Evil"'),
    ],
    ids=["origin", "method", "header"],
)
async def test_a_refused_cors_preflight_is_a_400_problem_naming_what_it_refused(
    start_service: StartService, serve: Serve, asked: dict[str, str], named: str
) -> None:
    service = await _service(start_service, serve, cors_origins="https://app.example")
    async with httpx.AsyncClient(base_url=service.url) as client:
        refused = await client.options("/v1/calls", headers={**PREFLIGHT, **asked})
    assert_problem(refused.status_code, refused.headers["content-type"], refused.json(), 400)
    assert refused.json()["type"] == "https://callbridge.dev/problems/cors-refused"
    assert refused.json()["detail"] == f"the CORS preflight is refused: {named} is not allowed"


@pytest.mark.parametrize("cors_origins", ["https://app.example", ""], ids=["cors", "no-cors"])
async def test_the_document_lists_a_refused_preflight_on_options_only_with_cors(
    start_service: StartService, serve: Serve, cors_origins: str
) -> None:
    service = await _service(start_service, serve, cors_origins=cors_origins)
    async with httpx.AsyncClient(base_url=service.url) as client:
        document = (await client.get("/openapi.json")).json()
    options = [op for ops in document["paths"].values() for m, op in ops.items() if m == "options"]
    assert options
    for operation in options:
        refused = operation["responses"].get("400", {}).get("content")
        assert refused == ({PROBLEM: {"schema": PROBLEM_SCHEMA}} if cors_origins else None)


async def test_whip_answer_carries_location_etag_and_ice_server_links(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(
        start_service, serve, ice_servers="stun:stun.example.net:3478,turn:turn.example.net"
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        started = await _start(client)
        options = await client.options("/v1/calls")
    assert started.status_code == 201
    assert started.headers["content-type"] == "application/sdp"
    assert started.headers["etag"]
    links = started.headers["link"]
    assert '<stun:stun.example.net:3478>; rel="ice-server"' in links
    assert '<turn:turn.example.net>; rel="ice-server"' in links
    assert options.status_code == 204
    assert options.headers["accept-post"].startswith("application/sdp")
    assert "ice-server" in options.headers["link"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "application/json"}, 415),
        ({"content-type": "application/trickle-ice-sdpfrag"}, 428),
        ({"content-type": "application/trickle-ice-sdpfrag", "if-match": '"stale"'}, 412),
        ({"content-type": "application/trickle-ice-sdpfrag", "if-match": "ETAG"}, 405),
        ({"content-type": "application/trickle-ice-sdpfrag", "if-match": '"zz", ETAG'}, 405),
        ({"content-type": "application/trickle-ice-sdpfrag", "if-match": "W/ETAG"}, 412),
        ({"content-type": "application/trickle-ice-sdpfrag", "if-match": "ETAG;x"}, 400),
    ],
    ids=["json", "no-if-match", "stale", "current", "current-in-a-list", "weak", "malformed"],
)
async def test_whip_patch_is_answered_as_rfc_9725_allows(
    start_service: StartService, serve: Serve, headers: dict[str, str], status: int
) -> None:
    service = await _service(start_service, serve)
    async with httpx.AsyncClient(base_url=service.url) as client:
        started = await _start(client)
        if "if-match" in headers:
            etag = started.headers["etag"]
            headers = {**headers, "if-match": headers["if-match"].replace("ETAG", etag)}
        response = await client.patch(
            started.headers["location"], content=b"a=ice-ufrag:abcd\r\n", headers=headers
        )
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_delete_on_the_location_answers_the_final_record_and_then_the_call_is_gone(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(start_service, serve)
    async with httpx.AsyncClient(base_url=service.url) as client:
        location = (await _start(client)).headers["location"]
        deleted = await client.delete(location)
        after = [
            await client.get(location),
            await client.post(f"{location}/messages", json={"text": "hi"}),
            await client.post(f"{location}/hangup"),
            await client.get(f"{location}/events"),
            await client.delete(location),
        ]
    assert deleted.status_code == 200
    assert (deleted.json()["state"], deleted.json()["transcript"]) == ("ended", [])
    assert [r.status_code for r in after] == [410] * len(after)
    assert {r.headers["content-type"] for r in after} == {"application/problem+json"}


async def test_hang_up_ends_the_call_and_keeps_its_record_readable(
    start_service: StartService, serve: Serve
) -> None:
    service = await _service(start_service, serve)
    async with httpx.AsyncClient(base_url=service.url) as client:
        location = (await _start(client)).headers["location"]
        hung_up = await client.post(f"{location}/hangup")
        message = await client.post(f"{location}/messages", json={"text": "hi"})
        record = await client.get(location)
    assert (hung_up.status_code, hung_up.json()["state"]) == (200, "ended")
    assert message.status_code == 409
    assert (record.status_code, record.json()["end_reason"]) == (200, "hangup")


async def test_a_provider_outage_is_reported_but_does_not_make_the_instance_unready(
    start_service: StartService,
) -> None:
    dead_port = free_port()
    service = await start_service(
        provider="openai", provider_url=f"http://127.0.0.1:{dead_port}", api_key="sk-x"
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "pass"
    assert body["checks"]["provider:reachable"][0]["status"] == "warn"
    assert "callbridge_provider_up 0.0" in metrics.text


async def test_the_call_listing_pages_by_call_id(start_service: StartService, serve: Serve) -> None:
    service = await _service(start_service, serve)
    async with httpx.AsyncClient(base_url=service.url) as client:
        for _ in range(3):
            await _start(client)
        first = (await client.get("/v1/calls", params={"limit": 2})).json()
        rest = (await client.get("/v1/calls", params={"after": first["next"]})).json()
    ids = [c["id"] for c in first["calls"] + rest["calls"]]
    assert ids == sorted(service.manager.sessions)
    assert (len(first["calls"]), first["next"], rest["next"]) == (2, ids[1], None)


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "1001"}, {"after": "x" * 65}])
async def test_a_call_listing_asked_for_out_of_bounds_is_a_422(
    start_service: StartService, serve: Serve, query: dict[str, str]
) -> None:
    service = await _service(start_service, serve)
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.get("/v1/calls", params=query)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
