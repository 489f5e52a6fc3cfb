"""The stand-in's surface beyond calls: sessions without a call, client secrets, refusals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from media.local_provider import create_provider_app, provider_server_config
from media.local_provider.client_secrets import ClientSecrets
from media.local_provider.config import LocalProviderConfig
from tests.e2e.stand_in import Provider, local_provider, make_offer
from tests.e2e.waiting import until

API_KEY = "sk-surface"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with local_provider(LocalProviderConfig(api_key=API_KEY)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@contextlib.asynccontextmanager
async def served_as_in_production(config: LocalProviderConfig) -> AsyncIterator[str]:
    """The stand-in served with the uvicorn settings `callbridge provider` uses; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_provider_app(config)
    server = uvicorn.Server(provider_server_config(app, "127.0.0.1", port, log_config=None))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_a_sideband_for_an_unknown_call_is_refused_with_call_id_not_found(
    provider: Provider,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(provider.sideband_url("call_id=rtc_unknown"), additional_headers=AUTH):
            pass

    response = refused.value.response
    assert response.status_code == 404
    assert json.loads(response.body)["error"]["code"] == "call_id_not_found"


async def test_a_refused_sideband_handshake_is_not_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with served_as_in_production(LocalProviderConfig(media=False)) as base_url:
        with caplog.at_level(logging.INFO), pytest.raises(InvalidStatus):
            async with connect(base_url.replace("http", "ws") + "/v1/realtime?call_id=rtc_x"):
                pass

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("404" in r.getMessage() for r in caplog.records)


async def test_a_websocket_to_an_unknown_path_is_refused_with_the_error_object(
    provider: Provider,
) -> None:
    url = provider.base_url.replace("http://", "ws://") + "/v1/elsewhere"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=AUTH):
            pass

    assert refused.value.response.status_code == 404
    assert json.loads(refused.value.response.body)["error"]["message"] == (
        "Invalid URL (GET /v1/elsewhere)"
    )


async def test_a_plain_websocket_session_starts_with_the_model_asked_for(
    provider: Provider,
) -> None:
    url = provider.sideband_url("model=gpt-realtime-mini")
    async with connect(url, additional_headers=AUTH) as websocket:
        created = json.loads(await websocket.recv())

    assert created["type"] == "session.created"
    assert created["session"]["model"] == "gpt-realtime-mini"


async def test_a_plain_websocket_session_ends_with_its_socket(provider: Provider) -> None:
    async with connect(provider.sideband_url("model=gpt-realtime"), additional_headers=AUTH) as ws:
        json.loads(await ws.recv())
        (call,) = [provider.calls.get(call_id) for call_id in provider.calls.call_ids()]
        assert call is not None
        while_open = call.state

    await until(lambda: call.state == "ended", timeout_s=5.0)
    assert while_open == "active"


async def test_a_websocket_without_model_or_call_id_is_refused_with_400(
    provider: Provider,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(provider.sideband_url(""), additional_headers=AUTH):
            pass

    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body)["error"]["param"] == "model"


async def test_a_browser_creates_a_call_with_an_ephemeral_key_alone(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    minted = await http.post(
        provider.base_url + "/v1/realtime/client_secrets", json={}, headers=AUTH
    )
    key = minted.json()["value"]

    response = await http.post(
        provider.calls_url,
        content=await make_offer(),
        headers={
            "Content-Type": "application/sdp",
            "Authorization": f"Bearer {key}",
            "Origin": "http://browser.example",
        },
    )

    assert response.status_code == 201
    assert response.headers["access-control-allow-origin"] == "*"
    assert "location" in response.headers["access-control-expose-headers"].lower()


async def test_an_ephemeral_key_cannot_mint_more_keys(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    minted = await http.post(
        provider.base_url + "/v1/realtime/client_secrets", json={}, headers=AUTH
    )
    key = minted.json()["value"]

    again = await http.post(
        provider.base_url + "/v1/realtime/client_secrets",
        json={},
        headers={"Authorization": f"Bearer {key}"},
    )

    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("seconds", [5, 7201, "600", True])
async def test_a_client_secret_lifetime_out_of_range_is_refused(
    provider: Provider, http: httpx.AsyncClient, seconds: object
) -> None:
    response = await http.post(
        provider.base_url + "/v1/realtime/client_secrets",
        json={"expires_after": {"anchor": "created_at", "seconds": seconds}},
        headers=AUTH,
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "expires_after"


def test_a_client_secret_is_valid_until_it_expires() -> None:
    secrets = ClientSecrets()
    secret = secrets.issue({"type": "realtime"}, ttl_s=60, now=1000.0)

    assert secrets.valid(secret.value, now=1059.0) == secret
    assert secrets.valid(secret.value, now=1060.0) is None


def test_client_secrets_are_bounded_dropping_the_oldest() -> None:
    secrets = ClientSecrets(limit=2)
    first = secrets.issue({"type": "realtime"}, ttl_s=60, now=0.0)
    secrets.issue({"type": "realtime"}, ttl_s=60, now=0.0)
    secrets.issue({"type": "realtime"}, ttl_s=60, now=0.0)

    assert secrets.valid(first.value, now=1.0) is None


async def test_a_json_body_nesting_too_deeply_is_refused_as_invalid_json(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    deep = "[" * 20_000 + "]" * 20_000
    response = await http.post(
        provider.base_url + "/v1/realtime/client_secrets",
        content=deep,
        headers={**AUTH, "content-type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
