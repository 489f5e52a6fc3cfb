"""Scale-out end to end: two orchestrator instances and two workers sharing one Redis.

Every part is its own process, as in production: the stand-in provider (`callbridge provider`),
two `callbridge serve` instances without embedded workers, and `callbridge worker`s running the
handlers of `tests.e2e.handlers`, around a private redis-server. Calls are real WebRTC calls
(aiortc) placed on one instance; a handoff is triggered by typed user text that makes the
stand-in model call `background_agent`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from media.peer import CallClient
from service.redis_keys import RedisKeys
from tests.e2e.processes import Process, free_port
from tests.e2e.redis_server import RedisServer

KEY = "sk-x"
KEYS = RedisKeys()
REQUEST = "please ask the background agent what is 2 plus 3"
REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 15.0
# The slow handler answers after 3 s; a handoff silent for longer than the claim idle time is
# taken over by another worker, and the handler timeout stays below it so that a live worker's
# handoff is never taken from it.
SLOW_WORKER_ENV = {"CALLBRIDGE_HANDLER_TIMEOUT_S": "4", "CALLBRIDGE_QUEUE_CLAIM_IDLE_S": "5"}
LOG_TAIL_LINES = 40


@dataclass
class Cluster:
    """The running processes, and ways to reach them."""

    redis: RedisServer
    provider_url: str
    instances: list[str]
    tmp_path: Path
    processes: list[Process] = field(default_factory=list)

    def start_workers(self, handler: str, **env: str) -> list[Process]:
        """Start two workers, `worker-0` and `worker-1`, running `tests.e2e.handlers:<handler>`."""
        workers = [
            Process(
                ["worker", "--name", f"worker-{n}", "--grace", "1"],
                {
                    "CALLBRIDGE_QUEUE": self.redis.url,
                    "CALLBRIDGE_HANDLER": f"tests.e2e.handlers:{handler}",
                    # The tests package is not installed; this finds it wherever pytest started.
                    "PYTHONPATH": str(REPO_ROOT),
                    **env,
                },
                self.tmp_path / f"worker-{n}.log",
            ).start()
            for n in range(2)
        ]
        self.processes.extend(workers)
        return workers


@pytest.fixture
def cluster(redis_server: RedisServer, tmp_path: Path) -> Iterator[Cluster]:
    """Provider and two instances up and answering; workers are started by each test."""
    provider_port = free_port()
    provider_url = f"http://127.0.0.1:{provider_port}"
    provider = Process(
        ["provider", "--port", str(provider_port)],
        {"CALLBRIDGE_API_KEY": KEY},
        tmp_path / "provider.log",
    ).start()
    ports = [free_port(), free_port()]
    instances = [
        Process(
            ["serve"],
            {
                "CALLBRIDGE_PROVIDER": "openai",
                "CALLBRIDGE_PROVIDER_URL": provider_url,
                "CALLBRIDGE_API_KEY": KEY,
                "CALLBRIDGE_QUEUE": redis_server.url,
                "CALLBRIDGE_EMBEDDED_WORKER": "false",
                "CALLBRIDGE_PORT": str(port),
                # Calls are hung up by the tests; nothing is left to drain at teardown.
                "CALLBRIDGE_DRAIN_TIMEOUT_S": "0",
            },
            tmp_path / f"instance-{n}.log",
        ).start()
        for n, port in enumerate(ports)
    ]
    running = Cluster(
        redis_server,
        provider_url,
        [f"http://127.0.0.1:{port}" for port in ports],
        tmp_path,
        [provider, *instances],
    )
    try:
        provider.wait_http(f"{provider_url}/healthz")
        for instance, url in zip(instances, running.instances, strict=True):
            instance.wait_http(f"{url}/healthz")
        yield running
    finally:
        for process in reversed(running.processes):
            process.stop()
        # Shown by pytest only when the test failed.
        for process in running.processes:
            tail = process.output().splitlines()[-LOG_TAIL_LINES:]
            print(f"--- {process.log_path.name}\n" + "\n".join(tail))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


def call_id_of(call: CallClient) -> str:
    assert call.location is not None
    return call.location.rsplit("/", 1)[1]


async def ask_for_a_handoff(http: httpx.AsyncClient, instance: str, call_id: str) -> None:
    response = await http.post(f"{instance}/v1/calls/{call_id}/messages", json={"text": REQUEST})
    assert response.status_code == 202, response.text


async def call_record(http: httpx.AsyncClient, instance: str, call_id: str) -> dict[str, Any]:
    response = await http.get(f"{instance}/v1/calls/{call_id}")
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


async def provider_record(
    http: httpx.AsyncClient, cluster: Cluster, call_id: str
) -> dict[str, Any]:
    """The stand-in provider's debug record of the call (`function_call_outputs` and all)."""
    response = await http.get(
        f"{cluster.provider_url}/v1/realtime/calls/{call_id}",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


async def wait_for_handoff(
    http: httpx.AsyncClient, instance: str, call_id: str, state: str, timeout_s: float = WAIT_S
) -> dict[str, Any]:
    """The call's only handoff, once it is in `state`; fails at once in another final state."""
    deadline = time.monotonic() + timeout_s
    while True:
        handoffs = (await call_record(http, instance, call_id))["handoffs"]
        if handoffs:
            [handoff] = handoffs
            if handoff["state"] == state:
                return dict(handoff)
            finished = handoff["state"] in ("completed", "failed")
            assert not finished, f"the handoff ended {handoff['state']}, not {state}: {handoff}"
        assert time.monotonic() < deadline, f"no handoff became {state}: {handoffs}"
        await asyncio.sleep(0.05)


async def test_calls_on_both_instances_have_their_handoffs_answered_by_shared_workers(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    cluster.start_workers("echo")
    first, second = cluster.instances
    async with CallClient(f"{first}/v1/calls") as one, CallClient(f"{second}/v1/calls") as two:
        calls = [(first, call_id_of(one)), (second, call_id_of(two))]
        for instance, call_id in calls:
            await ask_for_a_handoff(http, instance, call_id)
        handoffs = [await wait_for_handoff(http, i, c, "completed") for i, c in calls]
        owners = [(await call_record(http, i, c))["owner"] for i, c in calls]
        outputs = [
            (await provider_record(http, cluster, c))["function_call_outputs"] for _, c in calls
        ]
    assert [h["output"] for h in handoffs] == [f"echo: {REQUEST}"] * 2
    assert outputs == [{h["tool_call_id"]: 1} for h in handoffs]
    assert owners[0] != owners[1]


async def test_a_handoff_whose_worker_is_killed_is_finished_once_by_the_other_worker(
    cluster: Cluster, http: httpx.AsyncClient, redis: Redis
) -> None:
    workers = cluster.start_workers("slow", **SLOW_WORKER_ENV)
    instance = cluster.instances[0]
    async with CallClient(f"{instance}/v1/calls") as call:
        call_id = call_id_of(call)
        await ask_for_a_handoff(http, instance, call_id)
        await wait_for_handoff(http, instance, call_id, "running")
        [pending] = await redis.xpending_range(KEYS.handoffs, "workers", "-", "+", 10)
        holder = int(str(pending["consumer"]).removeprefix("worker-"))
        victim, survivor = workers[holder], workers[1 - holder]
        assert victim.proc is not None
        assert survivor.proc is not None
        victim.proc.kill()
        handoff = await wait_for_handoff(http, instance, call_id, "completed", timeout_s=25.0)
        outputs = (await provider_record(http, cluster, call_id))["function_call_outputs"]
    assert handoff["output"].endswith(f"from pid {survivor.proc.pid}")
    assert outputs == {handoff["tool_call_id"]: 1}


async def test_a_handoff_asked_for_while_redis_is_down_is_answered_after_it_restarts(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    cluster.start_workers("echo")
    instance = cluster.instances[0]
    async with CallClient(f"{instance}/v1/calls") as call:
        call_id = call_id_of(call)
        cluster.redis.stop()
        await ask_for_a_handoff(http, instance, call_id)
        await wait_for_handoff(http, instance, call_id, "queued")
        cluster.redis.start()
        handoff = await wait_for_handoff(http, instance, call_id, "completed")
        outputs = (await provider_record(http, cluster, call_id))["function_call_outputs"]
    assert handoff["output"] == f"echo: {REQUEST}"
    assert outputs == {handoff["tool_call_id"]: 1}


async def test_a_handoff_whose_handler_always_fails_is_dead_lettered_and_the_model_told(
    cluster: Cluster, http: httpx.AsyncClient, redis: Redis
) -> None:
    cluster.start_workers("always_fails")
    instance = cluster.instances[0]
    async with CallClient(f"{instance}/v1/calls") as call:
        call_id = call_id_of(call)
        await ask_for_a_handoff(http, instance, call_id)
        handoff = await wait_for_handoff(http, instance, call_id, "failed")
        outputs = (await provider_record(http, cluster, call_id))["function_call_outputs"]
    assert await redis.xlen(KEYS.dead) == 1
    assert handoff["error"] == f"always fails: {REQUEST}"
    assert outputs == {handoff["tool_call_id"]: 1}


async def test_get_sent_to_the_other_instance_returns_the_owners_record(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    owner, other = cluster.instances
    async with CallClient(f"{owner}/v1/calls") as call:
        call_id = call_id_of(call)
        at_owner = await call_record(http, owner, call_id)
        forwarded = await call_record(http, other, call_id)
    assert (forwarded["id"], forwarded["owner"]) == (call_id, at_owner["owner"])


async def test_hang_up_sent_to_the_other_instance_ends_the_call_at_the_owner(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    owner, other = cluster.instances
    async with CallClient(f"{owner}/v1/calls") as call:
        call_id = call_id_of(call)
        hangup = await http.post(f"{other}/v1/calls/{call_id}/hangup")
        at_owner = await call_record(http, owner, call_id)
        ended_via_other = await call_record(http, other, call_id)
        at_provider = await provider_record(http, cluster, call_id)
    assert hangup.status_code == 200, hangup.text
    assert (at_owner["state"], at_owner["end_reason"]) == ("ended", "hangup")
    assert ended_via_other["state"] == "ended", "an ended call's record is found from any instance"
    assert at_provider["state"] == "ended"


async def test_a_call_deleted_at_the_other_instance_is_gone_at_both(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    owner, other = cluster.instances
    async with CallClient(f"{owner}/v1/calls") as call:
        call_id = call_id_of(call)
        deleted = await http.delete(f"{other}/v1/calls/{call_id}")
        after = [
            (await http.get(f"{url}/v1/calls/{call_id}")).status_code for url in (owner, other)
        ]
        at_provider = await provider_record(http, cluster, call_id)
    assert (deleted.status_code, deleted.json()["state"]) == (200, "ended"), deleted.text
    assert after == [410, 410]
    assert at_provider["state"] == "ended"
