"""A call we end is ended at the provider, however long the provider takes to agree."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.calls.hangups import Hangups
from service.redis_keys import RedisKeys
from signaling.ids import CallId
from signaling.provider import ProviderClient
from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.processes import Process, free_port
from tests.e2e.redis_server import RedisServer
from tests.e2e.waiting import until
from tests.unit.sdp_samples import AIORTC_OFFER

KEY = "sk-test-hangups"
KEYS = RedisKeys()
# An owner stalled past the control timeout (the lesser of 5 s and two leases) keeps its calls:
# the lease outlives the stall by far.
SILENT_OWNER_LEASE_S = 15.0
# An owner killed keeps its calls' leases until they lapse, after the control timeout (5 s).
DEAD_OWNER_LEASE_S = 10.0


async def _hangup_outcomes(client: httpx.AsyncClient) -> dict[str, float]:
    exposition = (await client.get("/metrics")).text
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "callbridge_provider_hangups"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


async def _started(
    start_service: StartService, serve: Serve, provider: FaultyProvider, **settings: Any
) -> tuple[RunningService, str]:
    service = await start_service(
        provider="openai", provider_url=await serve(provider.app()), api_key=KEY, **settings
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        started = await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
        )
    assert started.status_code == 201, started.text
    return service, started.headers["location"].rsplit("/", 1)[1]


async def test_a_hang_up_the_provider_refuses_for_a_while_is_retried_until_the_call_ends(
    start_service: StartService, serve: Serve
) -> None:
    provider = FaultyProvider(hangup_statuses=[503, 502, 503])
    service, call_id = await _started(start_service, serve, provider)
    async with httpx.AsyncClient(base_url=service.url) as client:
        before = await _hangup_outcomes(client)
        hung_up = await client.post(f"/v1/calls/{call_id}/hangup")
        await until(lambda: call_id in provider.ended, timeout_s=30.0)
        after = await _hangup_outcomes(client)
    assert hung_up.status_code == 200
    assert provider.hangups == [call_id] * 4
    assert after["retried"] - before["retried"] == 1
    assert after["confirmed"] - before["confirmed"] == 1
    assert service.manager.hangups.retrying == frozenset()


@pytest.mark.parametrize("gone", [404, 410])
async def test_a_hang_up_of_a_call_the_provider_does_not_know_is_not_retried(
    start_service: StartService, serve: Serve, gone: int
) -> None:
    provider = FaultyProvider(hangup_statuses=[gone, 200])
    service, call_id = await _started(start_service, serve, provider)
    async with httpx.AsyncClient(base_url=service.url) as client:
        hung_up = await client.post(f"/v1/calls/{call_id}/hangup")
    assert hung_up.status_code == 200
    assert provider.hangups == [call_id]
    assert service.manager.hangups.retrying == frozenset()


async def test_a_hang_up_failing_past_the_retry_time_is_counted_as_abandoned(
    start_service: StartService, serve: Serve
) -> None:
    provider = FaultyProvider(hangup_statuses=[503] * 1000)
    service, call_id = await _started(start_service, serve, provider, hangup_retry_s=1.0)
    async with httpx.AsyncClient(base_url=service.url) as client:
        before = await _hangup_outcomes(client)
        await client.post(f"/v1/calls/{call_id}/hangup")
        await until(lambda: not service.manager.hangups.retrying)
        after = await _hangup_outcomes(client)
    assert after["abandoned"] - before["abandoned"] == 1
    assert call_id not in provider.ended


async def test_a_hang_up_left_unfinished_by_a_dead_instance_is_carried_on_by_another(
    serve: Serve, redis: Redis
) -> None:
    provider = FaultyProvider()
    client = ProviderClient(await serve(provider.app()), KEY)
    # What an instance that died while retrying leaves behind: its hold, now in the past.
    await redis.zadd("callbridge:hangups", {"rtc_left_behind_by_a_dead_one": time.time() - 1})
    hangups = Hangups(client, retry_for_s=60.0, redis=redis)
    hangups.start()
    try:
        await until(lambda: "rtc_left_behind_by_a_dead_one" in provider.hangups)
        await until(lambda: not hangups.retrying)
        left = await redis.zrange("callbridge:hangups", 0, -1)
    finally:
        await hangups.aclose()
        await client.aclose()
    assert left == []


async def test_a_hang_up_is_recorded_for_the_others_before_the_provider_answers_it(
    serve: Serve, redis: Redis
) -> None:
    answer = asyncio.Event()

    async def hangup(request: Request) -> Response:
        await answer.wait()
        return Response(status_code=200)

    route = Route("/v1/realtime/calls/{call_id}/hangup", hangup, methods=["POST"])
    client = ProviderClient(await serve(Starlette(routes=[route])), KEY)
    hangups = Hangups(client, retry_for_s=60.0, redis=redis)
    try:
        hanging_up = asyncio.create_task(hangups.hang_up(CallId("rtc_being_hung_up")))
        await until(lambda: redis.zscore("callbridge:hangups", "rtc_being_hung_up"))
        answer.set()
        confirmed = await hanging_up
        left = await redis.zrange("callbridge:hangups", 0, -1)
    finally:
        await hangups.aclose()
        await client.aclose()
    assert (confirmed, left) == (True, [])


async def test_a_call_whose_owner_died_while_hanging_it_up_is_ended_not_joined_again(
    serve: Serve, redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    # The first hang-up (the owner's) never gets its answer; the taker's is answered.
    provider = FaultyProvider(hold_hangups=1)
    provider_url = await serve(provider.app())
    a, b = (_instance(name, provider_url, redis_server, tmp_path) for name in ("a", "b"))
    try:
        urls = [await _answering(instance) for instance in (a, b)]
        async with httpx.AsyncClient(timeout=10.0) as client:
            started = await client.post(
                f"{urls[0]}/v1/calls",
                content=AIORTC_OFFER,
                headers={"content-type": "application/sdp"},
            )
            call_id = started.headers["location"].rsplit("/", 1)[1]
            await until(lambda: provider.connected.is_set())
            hanging_up = asyncio.create_task(client.post(f"{urls[0]}/v1/calls/{call_id}/hangup"))
            await until(lambda: redis.zscore("callbridge:hangups", call_id))
            assert a.proc is not None
            a.proc.kill()
            with contextlib.suppress(httpx.HTTPError):
                await hanging_up

            async def ended_at_b() -> bool:
                record = (await client.get(f"{urls[1]}/v1/calls/{call_id}")).json()
                return bool(record.get("state") == "ended")

            await until(ended_at_b)
            record = (await client.get(f"{urls[1]}/v1/calls/{call_id}")).json()
    finally:
        provider.release.set()
        for instance in (a, b):
            instance.stop()
    assert provider.sideband_attempts == 1, "joined by its first owner only"
    assert provider.hangups == [call_id, call_id]
    assert (record["owner"], record["end_reason"]) == ("b", "hangup")


@dataclass
class EndedAtAnotherInstance:
    """A call ended through instance b while its owner a was silent: b's answer, each
    instance's answer to GET on the call afterwards, and the end reasons saved."""

    answer: httpx.Response
    reads: list[httpx.Response]
    saved: tuple[str, str] | None


async def _ended_at_another_instance(
    serve: Serve, redis_server: RedisServer, redis: Redis, tmp_path: Path, method: str
) -> EndedAtAnotherInstance:
    """Start a call on instance a, stall a, and end the call with `method` (POST .../hangup
    or DELETE) through instance b."""
    provider = FaultyProvider()
    provider_url = await serve(provider.app())
    a, b = (
        _instance(name, provider_url, redis_server, tmp_path, lease_s=SILENT_OWNER_LEASE_S)
        for name in ("a", "b")
    )
    try:
        urls = [await _answering(instance) for instance in (a, b)]
        async with httpx.AsyncClient(timeout=30.0) as client:
            call_id = await _call_started(client, urls[0])
            await until(lambda: provider.connected.is_set())
            target = f"{urls[1]}/v1/calls/{call_id}"
            with a.stalled():
                if method == "DELETE":
                    answer = await client.delete(target)
                else:
                    answer = await client.post(f"{target}/hangup")
            await until(lambda: _end_as_saved(redis, call_id))
            reads = [await client.get(f"{url}/v1/calls/{call_id}") for url in urls]
            saved = await _end_as_saved(redis, call_id)
    finally:
        for instance in (a, b):
            instance.stop()
    return EndedAtAnotherInstance(answer, reads, saved)


async def test_a_call_hung_up_at_another_instance_while_its_owner_is_silent_ends_as_hung_up(
    serve: Serve, redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    ended = await _ended_at_another_instance(serve, redis_server, redis, tmp_path, "POST")
    assert ended.answer.status_code == 200, ended.answer.text
    records = [read.json() for read in ended.reads]
    assert [(r["owner"], r["end_reason"]) for r in records] == [("a", "hangup")] * 2
    assert ended.saved == ("hangup", "hangup")


async def test_a_call_deleted_at_another_instance_while_its_owner_is_silent_is_saved_as_hung_up(
    serve: Serve, redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    ended = await _ended_at_another_instance(serve, redis_server, redis, tmp_path, "DELETE")
    assert ended.answer.status_code == 200, ended.answer.text
    assert [read.status_code for read in ended.reads] == [410, 410]
    assert ended.saved == ("hangup", "hangup")


async def test_a_call_hung_up_for_its_dead_owner_is_ended_as_hung_up_by_its_successor(
    serve: Serve, redis_server: RedisServer, tmp_path: Path
) -> None:
    provider = FaultyProvider()
    provider_url = await serve(provider.app())
    a, b = (
        _instance(name, provider_url, redis_server, tmp_path, lease_s=DEAD_OWNER_LEASE_S)
        for name in ("a", "b")
    )
    try:
        urls = [await _answering(instance) for instance in (a, b)]
        async with httpx.AsyncClient(timeout=30.0) as client:
            call_id = await _call_started(client, urls[0])
            await until(lambda: provider.connected.is_set())
            assert a.proc is not None
            a.proc.kill()
            a.proc.wait()
            # Sent straight to the provider, a's lease not having lapsed yet.
            hung_up = await client.post(f"{urls[1]}/v1/calls/{call_id}/hangup")

            async def ended_at_b() -> bool:
                record = (await client.get(f"{urls[1]}/v1/calls/{call_id}")).json()
                return bool(record.get("state") == "ended")

            await until(ended_at_b)
            record = (await client.get(f"{urls[1]}/v1/calls/{call_id}")).json()
    finally:
        for instance in (a, b):
            instance.stop()
    assert hung_up.status_code == 200, hung_up.text
    assert provider.sideband_attempts == 1, "joined by its first owner only"
    assert (record["owner"], record["end_reason"]) == ("b", "hangup")


async def _call_started(client: httpx.AsyncClient, url: str) -> str:
    started = await client.post(
        f"{url}/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
    )
    assert started.status_code == 201, started.text
    return started.headers["location"].rsplit("/", 1)[1]


async def _end_as_saved(redis: Redis, call_id: str) -> tuple[str, str] | None:
    """The end reasons of the call's saved record and of its event stream's final
    `call.state` event, once its owner has saved its end (both in one transaction)."""
    saved = await redis.get(KEYS.state(call_id))
    view = json.loads(saved)["view"] if saved is not None else None
    if view is None or view["state"] != "ended":
        return None
    [(_, last)] = await redis.xrevrange(KEYS.events(call_id), count=1) or []
    fields = last or {}
    assert fields.get("name") == "call.state", fields
    return view["end_reason"], json.loads(fields["data"])["reason"]


def _instance(
    name: str, provider_url: str, redis_server: RedisServer, tmp_path: Path, lease_s: float = 2.0
) -> Process:
    settings = {
        "CALLBRIDGE_PROVIDER": "openai",
        "CALLBRIDGE_PROVIDER_URL": provider_url,
        "CALLBRIDGE_API_KEY": KEY,
        "CALLBRIDGE_QUEUE": redis_server.url,
        "CALLBRIDGE_PORT": str(free_port()),
        "CALLBRIDGE_INSTANCE_ID": name,
        "CALLBRIDGE_CALL_LEASE_S": str(lease_s),
    }
    return Process(["serve"], settings, tmp_path / f"instance-{name}.log").start()


async def _answering(instance: Process) -> str:
    url = f"http://127.0.0.1:{instance.env['CALLBRIDGE_PORT']}"
    await asyncio.to_thread(instance.wait_http, f"{url}/healthz")
    return url
