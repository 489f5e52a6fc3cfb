"""Request bodies are taken only in the media type a route documents: JSON routes answer 415 to
anything else, a malformed Content-Type (RFC 9110 §8.3.1) is a 400, and the call-token route,
which takes no body, refuses one."""

from __future__ import annotations

import gzip

import httpx
import pytest

from tests.e2e.conftest import LiveCall, StartService
from tests.e2e.hostile import assert_problem
from tests.unit.sdp_samples import AIORTC_OFFER


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/messages", b'{"text": "hello"}'),
        ("/session", b'{"voice": "cedar"}'),
        ("/refer", b'{"target_uri": "tel:+14155550123"}'),
    ],
)
async def test_json_sent_as_text_plain_is_a_415_naming_json(
    live_call: LiveCall, path: str, body: bytes
) -> None:
    client, location = live_call.client, live_call.location
    response = await client.post(
        location + path, content=body, headers={"content-type": "text/plain"}
    )
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 415)
    assert response.headers["accept-post"] == "application/json"


async def test_json_without_a_content_type_is_a_415(live_call: LiveCall) -> None:
    client, location = live_call.client, live_call.location
    response = await client.post(f"{location}/messages", content=b'{"text": "hello"}')
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 415)


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("Application/JSON ; charset=utf-8", b'{"text": "hello"}', 202),
        ("application/json; charset=latin-1", '{"text": "hé"}'.encode("latin-1"), 415),
    ],
)
async def test_json_is_taken_with_media_type_parameters_but_only_in_utf_8(
    live_call: LiveCall, content_type: str, body: bytes, status: int
) -> None:
    client, location = live_call.client, live_call.location
    response = await client.post(
        f"{location}/messages", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    "content_type",
    ["application/json; x=" + "a" * 20_000, "application/json" + "; a=b" * 2000],
)
async def test_a_content_type_too_long_or_with_too_many_parameters_is_a_400(
    live_call: LiveCall, content_type: str
) -> None:
    client, location = live_call.client, live_call.location
    response = await client.post(
        f"{location}/messages", content=b'{"text": "hello"}', headers={"content-type": content_type}
    )
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 400)


@pytest.mark.parametrize(
    "content_type", ["application/sdp;;;;==", "application/sdp; charset", "application/sdp;=x"]
)
async def test_a_call_start_with_a_malformed_content_type_is_a_400(
    start_service: StartService, content_type: str
) -> None:
    service = await start_service(local_media=False)
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": content_type}
        )
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 400)
    assert service.manager.active() == []


@pytest.mark.parametrize("content_type", ["application/sdp;;", "application/sdp; charset=UTF-8"])
async def test_a_call_start_with_empty_parameters_or_declared_in_utf_8_is_taken(
    start_service: StartService, content_type: str
) -> None:
    service = await start_service(local_media=False)
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": content_type}
        )
        assert response.status_code == 201, response.text
        await client.delete(response.headers["location"])


async def test_a_call_start_declared_in_another_charset_than_utf_8_is_a_415(
    start_service: StartService,
) -> None:
    service = await start_service(local_media=False)
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls",
            content=AIORTC_OFFER,
            headers={"content-type": "application/sdp; charset=utf-16"},
        )
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 415)
    assert service.manager.active() == []


@pytest.mark.parametrize("body", [b"[[[[", b"{}"])
async def test_a_call_token_request_with_a_body_is_refused(
    start_service: StartService, body: bytes
) -> None:
    service = await start_service(
        local_media=False, api_tokens="tok-a", call_token_secret="hmac-secret"
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/call-tokens",
            content=body,
            headers={"authorization": "Bearer tok-a", "content-type": "application/json"},
        )
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 413)


async def test_a_gzipped_offer_is_a_415_not_read_as_sdp(start_service: StartService) -> None:
    # No content coding is taken (RFC 9110 §8.4, §15.5.16): the body was read as if it were
    # plain SDP whatever Content-Encoding said, so a gzipped offer was a "bad offer" 400 and a
    # mislabelled plain one a 201.
    service = await start_service(local_media=False)
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls",
            content=gzip.compress(AIORTC_OFFER.encode()),
            headers={"content-type": "application/sdp", "content-encoding": "gzip"},
        )
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 415)
    assert response.headers["accept-encoding"] == "identity"
