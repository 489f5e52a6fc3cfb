"""TURN credentials on the `rel="ice-server"` links of the WHIP endpoint (RFC 9725 §4.6): derived
from a shared secret per answer, or static, and given only to callers who may start calls."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time

import httpx
import pytest

from tests.e2e.conftest import RunningService, StartService
from tests.unit.sdp_samples import AIORTC_OFFER

STUN = "stun:stun.example.net:3478"
TURN = "turn:turn.example.net?transport=udp"
TURNS = "turns:turn.example.net:5349?transport=tcp"
ICE_SERVERS = f"{STUN},{TURN},{TURNS}"
SECRET = "turn-shared-secret-of-the-e2e-tests"
API_TOKEN = "api-token-of-the-turn-tests"

_PARAM = r';\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,]*))'
_LINK = re.compile(rf"<([^>]*)>((?:\s*{_PARAM})*)")


def _links(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Each link of the response's `Link` header: its parameters by target URI (quoted
    strings unescaped)."""
    links = {}
    for link in _LINK.finditer(response.headers.get("link", "")):
        params = {}
        for name, quoted, token in re.findall(_PARAM, link[2]):
            params[name] = re.sub(r"\\(.)", r"\1", quoted) if quoted else token.strip()
        links[link[1]] = params
    return links


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _hmac_of(username: str) -> str:
    digest = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


async def _service(start_service: StartService, **settings: object) -> RunningService:
    return await start_service(local_media=False, ice_servers=ICE_SERVERS, **settings)


async def _call_token_service(start_service: StartService, **settings: object) -> RunningService:
    return await _service(
        start_service,
        turn_shared_secret=SECRET,
        api_tokens=API_TOKEN,
        call_token_secret="call-token-secret-of-the-turn-tests",
        **settings,
    )


async def _minted(client: httpx.AsyncClient) -> tuple[str, int]:
    """A new call token and its `expires_at`."""
    minted = (await client.post("/v1/call-tokens", headers=_bearer(API_TOKEN))).json()
    return minted["token"], minted["expires_at"]


async def _call_token(client: httpx.AsyncClient) -> str:
    return (await _minted(client))[0]


# A call accepted just before its token expired is answered within 5 + 5 s (the offer's read,
# the provider's answer), then runs up to 600 s: its relay is needed 610 s past the token.
BOUNDED_CALLS = {"request_read_timeout_s": 5, "provider_timeout_s": 5, "max_call_duration_s": 600}


async def _start(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    started = await client.post(
        "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp", **headers}
    )
    assert started.status_code == 201, started.text
    await client.delete(started.headers["location"], headers=headers)
    return started


async def test_turn_links_get_a_username_expiring_after_the_credential_ttl(
    start_service: StartService,
) -> None:
    service = await _service(start_service, turn_shared_secret=SECRET, turn_credential_ttl_s=600)
    async with httpx.AsyncClient(base_url=service.url) as client:
        before = int(time.time())
        options = await client.options("/v1/calls")
        after = int(time.time())
    for uri in (TURN, TURNS):
        expiry, _, user_id = _links(options)[uri]["username"].partition(":")
        assert before + 600 <= int(expiry) <= after + 600
        assert user_id


async def test_a_turn_credential_is_the_hmac_of_its_username_under_the_shared_secret(
    start_service: StartService,
) -> None:
    service = await _service(start_service, turn_shared_secret=SECRET)
    async with httpx.AsyncClient(base_url=service.url) as client:
        links = _links(await client.options("/v1/calls"))
    for uri in (TURN, TURNS):
        assert links[uri]["credential"] == _hmac_of(links[uri]["username"])
        assert links[uri]["credential-type"] == "password"


async def test_stun_links_carry_no_credentials(start_service: StartService) -> None:
    service = await _service(start_service, turn_shared_secret=SECRET)
    async with httpx.AsyncClient(base_url=service.url) as client:
        links = _links(await client.options("/v1/calls"))
    assert links[STUN] == {"rel": "ice-server"}


async def test_every_answer_gets_a_turn_username_of_its_own(start_service: StartService) -> None:
    service = await _service(start_service, turn_shared_secret=SECRET)
    async with httpx.AsyncClient(base_url=service.url) as client:
        first = _links(await client.options("/v1/calls"))[TURN]["username"]
        second = _links(await client.options("/v1/calls"))[TURN]["username"]
    assert first != second


async def test_a_call_start_answer_gives_turn_credentials_to_a_call_token(
    start_service: StartService,
) -> None:
    service = await _call_token_service(start_service)
    async with httpx.AsyncClient(base_url=service.url) as client:
        started = await _start(client, **_bearer(await _call_token(client)))
    turn = _links(started)[TURN]
    assert turn["credential"] == _hmac_of(turn["username"])


async def test_a_call_tokens_options_credential_expires_when_its_last_call_may_end(
    start_service: StartService,
) -> None:
    service = await _call_token_service(start_service, **BOUNDED_CALLS)
    async with httpx.AsyncClient(base_url=service.url) as client:
        token, expires_at = await _minted(client)
        options = await client.options("/v1/calls", headers=_bearer(token))
    for uri in (TURN, TURNS):
        assert _links(options)[uri]["username"].partition(":")[0] == str(expires_at + 610)


async def test_a_call_tokens_call_start_credential_expires_when_its_last_call_may_end(
    start_service: StartService,
) -> None:
    service = await _call_token_service(start_service, **BOUNDED_CALLS)
    async with httpx.AsyncClient(base_url=service.url) as client:
        token, expires_at = await _minted(client)
        started = await _start(client, **_bearer(token))
    turn = _links(started)[TURN]
    assert turn["username"].partition(":")[0] == str(expires_at + 610)
    assert turn["credential"] == _hmac_of(turn["username"])


async def test_an_api_tokens_credential_keeps_the_ttl_with_calls_bounded(
    start_service: StartService,
) -> None:
    service = await _call_token_service(start_service, turn_credential_ttl_s=7200, **BOUNDED_CALLS)
    async with httpx.AsyncClient(base_url=service.url) as client:
        before = int(time.time())
        options = await client.options("/v1/calls", headers=_bearer(API_TOKEN))
        after = int(time.time())
    expiry = int(_links(options)[TURN]["username"].partition(":")[0])
    assert before + 7200 <= expiry <= after + 7200


async def test_static_turn_credentials_are_given_quoted_and_escaped(
    start_service: StartService,
) -> None:
    password = 'pa"ss\\word; with, separators'
    service = await _service(start_service, turn_username="relay-user", turn_password=password)
    async with httpx.AsyncClient(base_url=service.url) as client:
        options = await client.options("/v1/calls")
    assert 'credential="pa\\"ss\\\\word; with, separators"' in options.headers["link"]
    for uri in (TURN, TURNS):
        assert _links(options)[uri]["username"] == "relay-user"
        assert _links(options)[uri]["credential"] == password


@pytest.mark.parametrize("headers", [{}, _bearer("not-a-token")], ids=["no-token", "bad-token"])
async def test_an_options_that_may_not_start_calls_gets_turn_links_without_credentials(
    start_service: StartService, headers: dict[str, str]
) -> None:
    service = await _service(start_service, turn_shared_secret=SECRET, api_tokens=API_TOKEN)
    async with httpx.AsyncClient(base_url=service.url) as client:
        options = await client.options("/v1/calls", headers=headers)
    assert options.status_code == 204
    assert _links(options) == {uri: {"rel": "ice-server"} for uri in (STUN, TURN, TURNS)}


async def test_an_options_with_an_api_token_gets_turn_credentials(
    start_service: StartService,
) -> None:
    service = await _service(start_service, turn_shared_secret=SECRET, api_tokens=API_TOKEN)
    async with httpx.AsyncClient(base_url=service.url) as client:
        options = await client.options("/v1/calls", headers=_bearer(API_TOKEN))
    turn = _links(options)[TURN]
    assert turn["credential"] == _hmac_of(turn["username"])


async def test_an_options_with_a_call_token_gets_turn_credentials(
    start_service: StartService,
) -> None:
    service = await _call_token_service(start_service)
    async with httpx.AsyncClient(base_url=service.url) as client:
        options = await client.options("/v1/calls", headers=_bearer(await _call_token(client)))
    turn = _links(options)[TURN]
    assert turn["credential"] == _hmac_of(turn["username"])


async def test_a_cors_preflight_gets_no_ice_servers(start_service: StartService) -> None:
    service = await _service(
        start_service, turn_shared_secret=SECRET, cors_origins="https://app.example"
    )
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST"}
    async with httpx.AsyncClient(base_url=service.url) as client:
        answer = await client.options("/v1/calls", headers=preflight)
    assert answer.status_code == 204
    assert "link" not in answer.headers


async def test_turn_secrets_and_credentials_never_reach_a_log_line(
    start_service: StartService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The test's own HTTP client traces every answer's headers at DEBUG: not the service's log.
    caplog.set_level(logging.INFO, logger="httpcore")
    derived = await _service(start_service, turn_shared_secret=SECRET)
    static = await _service(
        start_service, turn_username="relay-user", turn_password="static-turn-password"
    )
    issued = []
    for service in (derived, static):
        async with httpx.AsyncClient(base_url=service.url) as client:
            issued.append(_links(await client.options("/v1/calls"))[TURN]["credential"])
            issued.append(_links(await _start(client))[TURN]["credential"])
    assert "static-turn-password" in issued
    for secret in (SECRET, *issued):
        assert secret not in caplog.text


async def test_an_answer_holding_turn_credentials_is_not_stored_by_caches(
    start_service: StartService,
) -> None:
    service = await _service(start_service, turn_shared_secret=SECRET)
    async with httpx.AsyncClient(base_url=service.url) as client:
        options = await client.options("/v1/calls")
        started = await _start(client)
    assert options.headers["cache-control"] == "no-store"
    assert started.headers["cache-control"] == "no-store"


async def test_the_options_answer_says_it_varies_with_the_callers_token(
    start_service: StartService,
) -> None:
    service = await _service(start_service, turn_shared_secret=SECRET, api_tokens=API_TOKEN)
    async with httpx.AsyncClient(base_url=service.url) as client:
        anonymous = await client.options("/v1/calls")
    assert anonymous.headers["vary"] == "Authorization"
    assert "cache-control" not in anonymous.headers
