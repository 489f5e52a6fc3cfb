"""SIGTERM drains: readiness fails, new calls are refused, live calls finish, exit 0."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from media.peer import CallClient
from tests.e2e.conftest import StartService
from tests.e2e.processes import Process, free_port
from tests.e2e.redis_server import RedisServer
from tests.e2e.sse import SseRecorder
from tests.e2e.waiting import until
from tests.unit.sdp_samples import AIORTC_OFFER

KEY = "sk-drain-test"
DRAIN_S = 3.0


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[tuple[Process, str, Process, str]]:
    provider_port, serve_port = free_port(), free_port()
    provider = Process(
        ["provider", "--port", str(provider_port)],
        {"CALLBRIDGE_API_KEY": KEY},
        tmp_path / "provider.log",
    ).start()
    provider_url = f"http://127.0.0.1:{provider_port}"
    serve = Process(
        ["serve", "--port", str(serve_port)],
        {
            "CALLBRIDGE_PROVIDER": "openai",
            "CALLBRIDGE_PROVIDER_URL": provider_url,
            "CALLBRIDGE_API_KEY": KEY,
            "CALLBRIDGE_DRAIN_TIMEOUT_S": str(DRAIN_S),
            "CALLBRIDGE_HANDLER": "cmd:sleep 1; echo drained answer",
            "CALLBRIDGE_LOG_FORMAT": "json",
        },
        tmp_path / "serve.log",
    ).start()
    serve_url = f"http://127.0.0.1:{serve_port}"
    try:
        provider.wait_http(f"{provider_url}/healthz")
        serve.wait_http(f"{serve_url}/healthz")
        yield provider, provider_url, serve, serve_url
    finally:
        serve.stop()
        provider.stop()


def drain_begun(serve: Process) -> bool:
    """Whether `serve` has said that it drains: its signal handler has run and started the
    drain, which goes before any request sent from then on."""
    return "SIGTERM: draining 1 live call" in serve.output()


async def test_sigterm_with_a_live_call_and_pending_handoff_drains_then_exits_zero(
    processes: tuple[Process, str, Process, str],
) -> None:
    _, provider_url, serve, serve_url = processes
    async with CallClient(f"{serve_url}/v1/calls") as call, httpx.AsyncClient() as http:
        assert call.location is not None
        call_id = call.location.rsplit("/", 1)[1]
        events = SseRecorder(f"{call.location}/events")
        await events.start()
        await http.post(
            f"{call.location}/messages", json={"text": "ask the background agent to wrap up"}
        )
        await events.wait_for(lambda e: e.name == "handoff.queued")

        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await until(lambda: drain_begun(serve))
        ready = await http.get(f"{serve_url}/readyz")
        refused = await http.post(
            f"{serve_url}/v1/calls",
            content=AIORTC_OFFER,
            headers={"content-type": "application/sdp"},
        )
        completed = await events.wait_for(lambda e: e.name == "handoff.completed")
        ended = await events.wait_for(
            lambda e: e.name == "call.state" and e.data["state"] == "ended", DRAIN_S + 5
        )
        code = await asyncio.to_thread(serve.proc.wait, DRAIN_S + 10)
        elapsed = time.monotonic() - signalled
        await events.stop()
        provider = await http.get(
            f"{provider_url}/v1/realtime/calls/{call_id}",
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert ready.status_code == 503
    assert ready.json()["checks"]["instance:draining"][0]["status"] == "fail"
    assert refused.status_code == 503
    assert completed.data["output"] == "drained answer"
    assert ended.data["reason"] == "drain"
    assert code == 0, serve.output()[-2000:]
    assert elapsed < DRAIN_S + 6
    record = provider.json()
    assert record["state"] == "ended"
    assert sum(record["function_call_outputs"].values()) == 1


async def test_sigterm_ends_a_stream_that_follows_another_instances_call_cleanly(
    redis_server: RedisServer, start_service: StartService, tmp_path: Path
) -> None:
    owner = await start_service(local_media=False, queue=redis_server.url)
    port = free_port()
    follower = Process(
        ["serve", "--port", str(port)],
        {
            "CALLBRIDGE_QUEUE": redis_server.url,
            "CALLBRIDGE_LOCAL_MEDIA": "false",
            "CALLBRIDGE_LOG_FORMAT": "json",
        },
        tmp_path / "follower.log",
    ).start()
    try:
        follower.wait_http(f"http://127.0.0.1:{port}/healthz")
        async with httpx.AsyncClient(base_url=owner.url, timeout=10) as http:
            started = await http.post(
                "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
            )
            assert started.status_code == 201, started.text
            location = started.headers["location"]
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as elsewhere,
                elsewhere.stream("GET", f"{location}/events") as stream,
            ):
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                assert await anext(lines) == ": stream open"
                assert follower.proc is not None
                follower.proc.send_signal(signal.SIGTERM)
                # The call lives on at its owner: nothing this instance drains closes the
                # stream, so uvicorn's graceful timeout cancels it mid-response (an ERROR
                # with a traceback, and a chunked body the client sees cut).
                ended_cleanly = True
                try:
                    async for _ in lines:
                        pass
                except httpx.RemoteProtocolError:
                    ended_cleanly = False
            await http.delete(location)
        code = await asyncio.to_thread(follower.proc.wait, 30)
        assert code == 0
        assert "Exception in ASGI application" not in follower.output()
        assert ended_cleanly
    finally:
        follower.stop()
