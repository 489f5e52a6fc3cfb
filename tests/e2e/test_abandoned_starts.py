"""A call start whose client gave up before the provider answered leaves no call behind: the
call is hung up at the provider and its slot is free again."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.hostile import RawConnection, healthy, request_head
from tests.e2e.redis_server import RedisServer
from tests.e2e.waiting import until
from tests.unit.sdp_samples import AIORTC_OFFER


async def _abandon_a_start(service: RunningService, provider: FaultyProvider) -> None:
    """Start a call and give up while the provider holds its answer; then let it answer."""
    async with httpx.AsyncClient(base_url=service.url) as client:
        start = asyncio.create_task(
            client.post(
                "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
            )
        )
        await asyncio.wait_for(provider.holding.wait(), 10)
        start.cancel()
        await asyncio.gather(start, return_exceptions=True)
    provider.release.set()


@pytest.mark.parametrize("queue", ["memory", "redis"])
async def test_a_start_abandoned_before_the_answer_is_hung_up_and_frees_its_slot(
    start_service: StartService, serve: Serve, request: pytest.FixtureRequest, queue: str
) -> None:
    if queue == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        queue = redis_server.url
    provider = FaultyProvider(script=["held"])
    service = await start_service(
        provider="openai", provider_url=await serve(provider.app()), max_calls=1, queue=queue
    )
    await _abandon_a_start(service, provider)
    await until(lambda: provider.hangups == provider.created == ["rtc_fault0"])
    await until(lambda: service.manager.capacity_left == 1)
    call = service.manager.get("rtc_fault0")
    assert call is not None
    assert (call.state, call.end_reason) == ("failed", "client_gone")


async def test_a_client_that_leaves_in_the_middle_of_its_offer_is_not_logged_as_a_server_error(
    start_service: StartService, caplog: pytest.LogCaptureFixture
) -> None:
    service = await start_service(local_media=False)
    head = request_head(
        "POST", "/v1/calls", {"Content-Type": "application/sdp", "Content-Length": "1000"}
    )
    connection = await RawConnection.open(service.url)
    await connection.send(head + AIORTC_OFFER.encode()[:100])
    await connection.close()
    # The service has seen the client leave once a later request is served.
    assert await healthy(service.url)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
