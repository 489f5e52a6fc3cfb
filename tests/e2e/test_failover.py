"""Failover end to end: calls outlive the instance that owned them.

Every part is its own process: the stand-in provider in no-media mode (signaling and sideband
only, `CALLBRIDGE_LOCAL_MEDIA=false`), two `callbridge serve` instances `a` and `b` with a
2-second ownership lease, one `callbridge worker` whose handler answers after 3 s (so a handoff
is in flight when an instance goes), around a private redis-server (or, where a test says so,
the session's Redis Cluster too). A call is started with a plain SDP offer; a handoff is asked
for with typed user text that makes the stand-in model call `background_agent`. Turns taken
while no instance holds a call are a phone caller's: the stand-in rings instance `a`'s webhook,
and the caller speaks through the phone leg whoever listens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from service.calls.lease import FORGET_AFTER_LEASES, CallLeases
from service.calls.store import CallStore, StoredCall
from service.redis_client import redis_now_ms
from service.redis_keys import RedisKeys
from tests.e2e.processes import Process, free_port
from tests.e2e.redis_cluster import SharedRedis
from tests.e2e.waiting import until
from tests.unit.sdp_samples import AIORTC_OFFER

KEY = "sk-x"
AUTH = {"Authorization": f"Bearer {KEY}"}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
KEYS = RedisKeys()
REQUEST = "please ask the background agent what is 2 plus 3"
REPO_ROOT = Path(__file__).resolve().parents[2]
CALLS = 20
# Short for quick takeovers, but long enough that a busy owner on a 2-core machine renews in time.
LEASE_S = 2.0
WAIT_S = 30.0
LOG_TAIL_LINES = 40


@dataclass
class Cluster:
    """The running processes: the provider, the worker and instances `a` and `b` by name."""

    redis_url: str
    provider_url: str
    tmp_path: Path
    worker: Process
    urls: dict[str, str] = field(default_factory=dict)
    instances: dict[str, Process] = field(default_factory=dict)
    others: list[Process] = field(default_factory=list)
    _ports: dict[str, int] = field(default_factory=dict)
    _starts: int = 0

    def start_instance(self, name: str) -> None:
        """Start (or start again) instance `name` on its port and wait until it answers."""
        port = self._ports.setdefault(name, free_port())
        self._starts += 1
        process = Process(
            ["serve"],
            {
                "CALLBRIDGE_PROVIDER": "openai",
                "CALLBRIDGE_PROVIDER_URL": self.provider_url,
                "CALLBRIDGE_API_KEY": KEY,
                "CALLBRIDGE_QUEUE": self.redis_url,
                "CALLBRIDGE_EMBEDDED_WORKER": "false",
                "CALLBRIDGE_PORT": str(port),
                "CALLBRIDGE_INSTANCE_ID": name,
                "CALLBRIDGE_CALL_LEASE_S": str(LEASE_S),
                "CALLBRIDGE_DRAIN_TIMEOUT_S": "0",
                "CALLBRIDGE_RATE_LIMIT_BURST": "1000",
                "CALLBRIDGE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            },
            self.tmp_path / f"instance-{name}-{self._starts}.log",
        ).start()
        self.instances[name] = process
        self.urls[name] = f"http://127.0.0.1:{port}"
        process.wait_http(f"{self.urls[name]}/healthz")

    def kill(self, name: str) -> None:
        """SIGKILL instance `name`: no drain, no goodbye."""
        proc = self.instances[name].proc
        assert proc is not None
        proc.kill()
        proc.wait()

    def stop(self, name: str) -> None:
        """SIGTERM instance `name` and wait for it to exit (it drains first)."""
        self.instances[name].stop()

    def processes(self) -> list[Process]:
        return [*self.others, *self.instances.values()]


@pytest.fixture
def cluster(shared_redis: SharedRedis, tmp_path: Path) -> Iterator[Cluster]:
    """Provider, worker and instances `a` and `b`, all up and answering."""
    provider_port = free_port()
    provider_url = f"http://127.0.0.1:{provider_port}"
    provider = Process(
        ["provider", "--port", str(provider_port)],
        {
            "CALLBRIDGE_API_KEY": KEY,
            "CALLBRIDGE_LOCAL_MEDIA": "false",
            "CALLBRIDGE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        },
        tmp_path / "provider.log",
    ).start()
    worker = Process(
        ["worker", "--name", "worker-0", "--grace", "1"],
        {
            "CALLBRIDGE_QUEUE": shared_redis.url,
            "CALLBRIDGE_HANDLER": "tests.e2e.handlers:slow",
            "CALLBRIDGE_WORKER_CONCURRENCY": str(2 * CALLS),
            "PYTHONPATH": str(REPO_ROOT),
        },
        tmp_path / "worker.log",
    ).start()
    running = Cluster(shared_redis.url, provider_url, tmp_path, worker, others=[provider, worker])
    try:
        provider.wait_http(f"{provider_url}/healthz")
        running.start_instance("a")
        running.start_instance("b")
        yield running
    finally:
        for process in reversed(running.processes()):
            process.stop()
        # Shown by pytest only when the test failed.
        for process in running.processes():
            tail = process.output().splitlines()[-LOG_TAIL_LINES:]
            print(f"--- {process.log_path.name}\n" + "\n".join(tail))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


# Helpers


async def start_call(http: httpx.AsyncClient, instance: str) -> str:
    response = await http.post(
        f"{instance}/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
    )
    assert response.status_code == 201, response.text
    return response.headers["location"].rsplit("/", 1)[1]


async def eventually(
    http: httpx.AsyncClient, method: str, url: str, *, json_body: Any = None
) -> httpx.Response:
    """The first answer that is not a 503 (an owner being replaced answers 503 for a moment)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        response = await http.request(method, url, json=json_body)
        if response.status_code != 503:
            return response
        assert time.monotonic() < deadline, f"{method} {url} kept answering 503: {response.text}"
        await asyncio.sleep(0.1)


async def ask_for_a_handoff(http: httpx.AsyncClient, instance: str, call_id: str) -> None:
    url = f"{instance}/v1/calls/{call_id}/messages"
    response = await eventually(http, "POST", url, json_body={"text": REQUEST})
    assert response.status_code == 202, response.text


async def call_record(http: httpx.AsyncClient, instance: str, call_id: str) -> dict[str, Any]:
    response = await eventually(http, "GET", f"{instance}/v1/calls/{call_id}")
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


async def provider_record(
    http: httpx.AsyncClient, cluster: Cluster, call_id: str
) -> dict[str, Any]:
    response = await http.get(f"{cluster.provider_url}/v1/realtime/calls/{call_id}", headers=AUTH)
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


async def ring(http: httpx.AsyncClient, cluster: Cluster, instance: str) -> str:
    """A phone call rung at `instance`'s webhook, once the instance has joined its sideband."""
    response = await http.post(
        f"{cluster.provider_url}/local/sip/ring",
        json={"webhook_url": f"{instance}/v1/provider/webhooks"},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    call_id: str = response.json()["call_id"]
    await listened_to_by(http, cluster, call_id, sidebands=1)
    return call_id


async def listened_to_by(
    http: httpx.AsyncClient, cluster: Cluster, call_id: str, *, sidebands: int
) -> None:
    """Wait until the stand-in sends the answered phone call's events to `sidebands`
    sidebands (besides the caller, who hears every reply)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        response = await http.get(f"{cluster.provider_url}/local/sip/calls/{call_id}", headers=AUTH)
        assert response.status_code == 200, response.text
        call = response.json()["call"]
        if call is not None and call["subscribers"] == sidebands + 1:
            return
        assert time.monotonic() < deadline, f"{call_id} never had {sidebands} sidebands: {call}"
        await asyncio.sleep(0.05)


async def say(http: httpx.AsyncClient, cluster: Cluster, call_id: str, text: str) -> None:
    """The phone caller says `text` on the phone leg (heard by the stand-in's model)."""
    response = await http.post(
        f"{cluster.provider_url}/local/sip/calls/{call_id}/say", json={"text": text}, headers=AUTH
    )
    assert response.status_code == 202, response.text


async def provider_items_until(
    http: httpx.AsyncClient,
    cluster: Cluster,
    call_id: str,
    check: Callable[[list[dict[str, Any]]], bool],
    what: str,
) -> list[dict[str, Any]]:
    """The stand-in's outline of the call's conversation once `check(items)` holds."""
    deadline = time.monotonic() + WAIT_S
    while True:
        items: list[dict[str, Any]] = (await provider_record(http, cluster, call_id))["items"]
        if check(items):
            return items
        assert time.monotonic() < deadline, f"{call_id}: the stand-in never {what}: {items}"
        await asyncio.sleep(0.05)


async def saved_transcript(redis: Redis, call_id: str) -> list[tuple[str, str]]:
    """The final transcript entries of the call's state as its owner last saved it."""
    saved = await redis.get(KEYS.state(call_id))
    entries = json.loads(saved)["view"]["transcript"] if saved else []
    return [(e["role"], e["text"]) for e in entries if e["final"]]


def spoken(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The call's transcript as (role, text), final entries only."""
    return [(e["role"], e["text"]) for e in record["transcript"] if e["final"]]


async def provider_events_seen(http: httpx.AsyncClient, instance: str, event_type: str) -> float:
    """How many provider events of `event_type` `instance` has received (its metrics)."""
    exposition = (await http.get(f"{instance}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "callbridge_provider_events_total"
        and sample.labels.get("type") == event_type
    )


async def wait_until(
    http: httpx.AsyncClient,
    instance: str,
    call_id: str,
    check: Callable[[dict[str, Any]], bool],
    what: str,
) -> dict[str, Any]:
    """The call's record (read at `instance`) once `check(record)` holds."""
    deadline = time.monotonic() + WAIT_S
    while True:
        record = await call_record(http, instance, call_id)
        if check(record):
            return record
        assert time.monotonic() < deadline, f"{call_id} never {what}: {record}"
        await asyncio.sleep(0.1)


def handoffs_in(record: dict[str, Any], *states: str) -> bool:
    return bool(record["handoffs"]) and all(h["state"] in states for h in record["handoffs"])


def handoffs_answered(record: dict[str, Any]) -> bool:
    """Every handoff finished, and its answer taken by the model."""
    handoffs = record["handoffs"]
    return bool(handoffs) and all(
        h["state"] in ("completed", "failed") and h["delivered_to_model"] for h in handoffs
    )


def answer_spoken_at_b(before: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """Whether a record shows the call owned by `b`, its handoff answered, and the model's
    reply to the answer added to the transcript as it was `before`."""

    def check(record: dict[str, Any]) -> bool:
        transcript = record["transcript"]
        return (
            record["owner"] == "b"
            and handoffs_answered(record)
            and len(transcript) > len(before["transcript"])
            and transcript[-1]["role"] == "assistant"
            and transcript[-1]["final"]
        )

    return check


@dataclass
class SseClient:
    """Reads a call's event stream, remembering each event's id; reconnects on demand."""

    call_id: str
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    @property
    def last_id(self) -> str | None:
        return self.events[-1][0] if self.events else None

    async def connect(self, instance: str) -> None:
        """Follow the stream at `instance`, resuming after the last event received."""
        opened = asyncio.Event()
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        self._task = asyncio.create_task(self._read(instance, headers, opened))
        await asyncio.wait_for(opened.wait(), WAIT_S)

    async def _read(self, instance: str, headers: dict[str, str], opened: asyncio.Event) -> None:
        url = f"{instance}/v1/calls/{self.call_id}/events"
        with contextlib.suppress(httpx.HTTPError):
            async with (
                httpx.AsyncClient(timeout=None) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                assert response.status_code == 200, await response.aread()
                opened.set()
                event_id, name, data = "", "message", ""
                async for line in response.aiter_lines():
                    if line.startswith("id:"):
                        event_id = line[3:].strip()
                    elif line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif line == "" and data:
                        self.events.append((event_id, name, json.loads(data)))
                        event_id, name, data = "", "message", ""

    async def wait_for(self, name: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not any(n == name for _, n, _ in self.events):
            assert time.monotonic() < deadline, f"{self.call_id}: no {name} event"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# Finding a call


async def test_a_call_is_found_by_every_instance_as_soon_as_its_start_is_answered(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    a, b = cluster.urls["a"], cluster.urls["b"]

    async def look_up_at_b_once_started_at_a() -> int:
        call_id = await start_call(http, a)
        return (await http.get(f"{b}/v1/calls/{call_id}")).status_code

    statuses = await asyncio.gather(*(look_up_at_b_once_started_at_a() for _ in range(CALLS)))
    assert statuses == [200] * CALLS


async def test_the_call_listing_of_any_instance_pages_through_every_instances_calls(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    a, b = cluster.urls["a"], cluster.urls["b"]
    started = set(await asyncio.gather(*(start_call(http, a if n % 2 else b) for n in range(10))))

    async def listed() -> list[str]:
        ids: list[str] = []
        after: str | None = None
        while True:
            params = {"limit": "4", **({"after": after} if after else {})}
            page = (await http.get(f"{a}/v1/calls", params=params)).json()
            ids += [c["id"] for c in page["calls"]]
            after = page["next"]
            if after is None:
                return ids

    async def all_listed() -> bool:
        return set(await listed()) == started

    await until(all_listed)
    ids = await listed()
    assert ids == sorted(started)


async def test_a_live_id_without_a_saved_record_does_not_end_the_listing_early(
    cluster: Cluster, http: httpx.AsyncClient, redis: Redis
) -> None:
    a = cluster.urls["a"]
    call_id = await start_call(http, a)
    # Sorted before any real call id, and never saved; leased to an instance elsewhere, so that
    # no instance here takes it over (and forgets it) while the listing is looked at.
    await redis.set(KEYS.lease("rtc_0000000000000000"), "elsewhere")
    await redis.sadd(KEYS.live, "rtc_0000000000000000")

    async def listed_after_the_stale_one() -> bool:
        first = (await http.get(f"{a}/v1/calls", params={"limit": "1"})).json()
        rest = (await http.get(f"{a}/v1/calls", params={"after": first["next"]})).json()
        return first["calls"] == [] and [c["id"] for c in rest["calls"]] == [call_id]

    await until(listed_after_the_stale_one)


# Losing an instance


@pytest.mark.parametrize("shared_redis", ["single", "cluster"], indirect=True)
async def test_calls_of_a_killed_instance_are_taken_over_with_their_handoffs_and_streams(
    cluster: Cluster, http: httpx.AsyncClient, shared_redis: SharedRedis
) -> None:
    a, b = cluster.urls["a"], cluster.urls["b"]
    call_ids = await asyncio.gather(*(start_call(http, a) for _ in range(CALLS)))
    streams = [SseClient(c) for c in call_ids]
    try:
        await asyncio.gather(*(s.connect(a) for s in streams))
        await asyncio.gather(*(ask_for_a_handoff(http, a, c) for c in call_ids))
        before = await asyncio.gather(
            *(
                wait_until(http, a, c, lambda r: handoffs_in(r, "queued", "running"), "handed off")
                for c in call_ids
            )
        )
        await asyncio.gather(*(s.wait_for("handoff.queued") for s in streams))

        cluster.kill("a")
        after = await asyncio.gather(
            *(
                wait_until(http, b, c, answer_spoken_at_b(old), "spoke its answer at b")
                for c, old in zip(call_ids, before, strict=True)
            )
        )
        await asyncio.gather(*(s.connect(b) for s in streams))
        await asyncio.gather(*(s.wait_for("handoff.completed") for s in streams))
        outputs = [
            (await provider_record(http, cluster, c))["function_call_outputs"] for c in call_ids
        ]
        logged = [
            [entry_id for entry_id, _ in await shared_redis.client.xrange(KEYS.events(c)) or []]
            for c in call_ids
        ]
    finally:
        for stream in streams:
            await stream.close()
    hangups = [await http.delete(f"{b}/v1/calls/{c}") for c in call_ids]
    at_provider = [(await provider_record(http, cluster, c))["state"] for c in call_ids]

    for old, new, output in zip(before, after, outputs, strict=True):
        [handoff] = new["handoffs"]
        assert (handoff["state"], handoff["delivered_to_model"]) == ("completed", True)
        assert output == {handoff["tool_call_id"]: 1}, "the answer reached the model once"
        old_items = [e["item_id"] for e in old["transcript"]]
        new_items = [e["item_id"] for e in new["transcript"]]
        assert new_items[: len(old_items)] == old_items, "the transcript lost an item"
    for stream, kept in zip(streams, logged, strict=True):
        received = [event_id for event_id, _, _ in stream.events]
        assert len(received) == len(set(received)), "an event came twice"
        assert received == kept[: len(received)], "an event was skipped"
    assert [h.status_code for h in hangups] == [200] * CALLS
    assert at_provider == ["ended"] * CALLS


async def test_a_call_whose_owner_was_killed_can_be_hung_up_from_the_other_instance_at_once(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    a, b = cluster.urls["a"], cluster.urls["b"]
    call_id = await start_call(http, a)
    await wait_until(http, b, call_id, lambda r: r["state"] == "active", "became active")
    cluster.kill("a")
    hangup = await eventually(http, "DELETE", f"{b}/v1/calls/{call_id}")
    at_provider = await provider_record(http, cluster, call_id)
    assert hangup.status_code == 200, hangup.text
    assert at_provider["state"] == "ended"


# An owner dying while it registers a call

# An owner writes a new call's lease (which lists the call as live) before answering its start,
# then saves the call's state. What its death between those writes leaves in Redis is made here
# by the code the owner runs, while no instance runs: `a` starts the call and is killed, every
# key it wrote for the call is deleted, and its writes up to the moment of death are made again.


async def left_by_an_owner_killed_while_registering(
    cluster: Cluster, http: httpx.AsyncClient, shared_redis: SharedRedis, *, saved: bool
) -> str:
    """A call live at the provider, whose keys are as `a` leaves them when killed right after
    writing the call's lease and, if `saved`, its first save; `b` is stopped."""
    cluster.stop("b")
    call_id = await start_call(http, cluster.urls["a"])
    redis = shared_redis.client
    store = CallStore(redis, keys=KEYS, events_maxlen=100, retention_s=60.0)
    stored: StoredCall | None = None

    async def saved_by_a() -> bool:
        nonlocal stored
        stored = await store.load(call_id)
        return stored is not None

    await until(saved_by_a)
    assert stored is not None
    cluster.kill("a")
    for key in (KEYS.state(call_id), KEYS.events(call_id), KEYS.lease(call_id)):
        await redis.delete(key)
    await redis.srem(KEYS.live, call_id)
    await redis.hdel(KEYS.summaries, call_id)
    await CallLeases(redis, "a", lease_s=LEASE_S, keys=KEYS).renew([call_id])
    if saved:
        await store.save(call_id, stored, [], ended=False)
    return call_id


@pytest.mark.parametrize("shared_redis", ["single", "cluster"], indirect=True)
async def test_a_call_whose_owner_died_before_saving_it_is_hung_up_at_the_provider(
    cluster: Cluster, http: httpx.AsyncClient, shared_redis: SharedRedis
) -> None:
    call_id = await left_by_an_owner_killed_while_registering(
        cluster, http, shared_redis, saved=False
    )
    cluster.start_instance("b")

    async def ended_at_the_provider_and_unlisted() -> bool:
        record = await provider_record(http, cluster, call_id)
        listed = await shared_redis.client.sismember(KEYS.live, call_id)
        return record["state"] == "ended" and not listed

    await until(ended_at_the_provider_and_unlisted, WAIT_S)
    lookup = await http.get(f"{cluster.urls['b']}/v1/calls/{call_id}")
    assert lookup.status_code == 404, lookup.text


@pytest.mark.parametrize("shared_redis", ["single", "cluster"], indirect=True)
async def test_a_call_whose_owner_died_right_after_its_first_save_is_taken_over(
    cluster: Cluster, http: httpx.AsyncClient, shared_redis: SharedRedis
) -> None:
    call_id = await left_by_an_owner_killed_while_registering(
        cluster, http, shared_redis, saved=True
    )
    cluster.start_instance("b")

    async def rejoined_by_b() -> bool:
        # Redis and the stand-in are looked at, not the call: a request would claim it.
        owner = await shared_redis.client.get(KEYS.lease(call_id))
        record = await provider_record(http, cluster, call_id)
        return owner == "b" and record["subscribers"] == 1

    await until(rejoined_by_b, WAIT_S)
    record = await call_record(http, cluster.urls["b"], call_id)
    at_provider = await provider_record(http, cluster, call_id)
    assert (record["owner"], record["state"]) == ("b", "active")
    assert at_provider["state"] == "active"


# Turns taken while no instance holds the call

# A call's conversation goes on at the provider while no sideband is attached, and the items
# made meanwhile are never sent to a sideband that joins later. Instance `b` is stopped before
# `a` is killed, so that no instance can hold the call while the caller speaks, and started again
# to take the call over. The next item then names the last item made meanwhile, which the new
# owner fetches with `conversation.item.retrieve`. The API's answer names no item before that
# one, so of a longer gap only that last item can be found: here the caller's turn made
# meanwhile stays unknown, and the reply to it is recovered.


async def test_a_reply_made_while_no_instance_held_the_call_is_recovered_in_its_place(
    cluster: Cluster, http: httpx.AsyncClient, redis: Redis
) -> None:
    a, b = cluster.urls["a"], cluster.urls["b"]
    cluster.stop("b")
    call_id = await ring(http, cluster, a)
    await say(http, cluster, call_id, "hello can you hear me")

    async def first_turn_saved() -> bool:
        return len(await saved_transcript(redis, call_id)) == 2

    await until(first_turn_saved)
    cluster.kill("a")
    await listened_to_by(http, cluster, call_id, sidebands=0)
    await say(http, cluster, call_id, "what time is it")
    await provider_items_until(
        http, cluster, call_id, lambda items: len(items) == 4, "answered the turn"
    )
    cluster.start_instance("b")
    await listened_to_by(http, cluster, call_id, sidebands=1)

    await say(http, cluster, call_id, "yes please")
    expected = [
        ("user", "hello can you hear me"),
        ("assistant", "You said: hello can you hear me"),
        ("assistant", "You said: what time is it"),
        ("user", "yes please"),
        ("assistant", "You said: yes please"),
    ]
    record = await wait_until(
        http, b, call_id, lambda r: spoken(r) == expected, "recovered the reply in its place"
    )
    asked = (await provider_record(http, cluster, call_id))["client_event_types"]
    retrieved = await provider_events_seen(http, b, "conversation.item.retrieved")

    assert record["owner"] == "b"
    assert asked.count("conversation.item.retrieve") == 1
    assert retrieved == 1


async def test_a_tool_call_made_while_no_instance_held_the_call_is_handed_off_once(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    a, b = cluster.urls["a"], cluster.urls["b"]
    cluster.stop("b")
    call_id = await ring(http, cluster, a)
    cluster.kill("a")
    await listened_to_by(http, cluster, call_id, sidebands=0)
    await say(http, cluster, call_id, REQUEST)
    *_, tool_call = await provider_items_until(
        http,
        cluster,
        call_id,
        lambda items: bool(items) and items[-1]["type"] == "function_call",
        "called the tool",
    )
    cluster.start_instance("b")
    await listened_to_by(http, cluster, call_id, sidebands=1)

    await say(http, cluster, call_id, "what time is it")
    record = await wait_until(http, b, call_id, handoffs_answered, "answered its handoff")
    outputs = (await provider_record(http, cluster, call_id))["function_call_outputs"]

    [handoff] = record["handoffs"]
    assert (handoff["tool_call_id"], handoff["request"]) == (tool_call["call_id"], REQUEST)
    assert handoff["state"] == "completed"
    assert outputs == {tool_call["call_id"]: 1}, "the answer reached the model once"


# Rolling deploys


async def test_a_rolling_restart_keeps_every_call_and_every_handoff_once(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    a, b = cluster.urls["a"], cluster.urls["b"]
    call_ids = await asyncio.gather(*(start_call(http, a if n % 2 else b) for n in range(CALLS)))
    for name in ("a", "b"):
        survivor = cluster.urls["b" if name == "a" else "a"]
        await asyncio.gather(*(ask_for_a_handoff(http, survivor, c) for c in call_ids))
        cluster.stop(name)
        cluster.start_instance(name)
        await asyncio.gather(
            *(
                wait_until(
                    http,
                    survivor,
                    c,
                    handoffs_answered,
                    "finished its handoffs",
                )
                for c in call_ids
            )
        )
    records = [await call_record(http, a, c) for c in call_ids]
    outputs = [(await provider_record(http, cluster, c))["function_call_outputs"] for c in call_ids]
    at_provider = [(await provider_record(http, cluster, c))["state"] for c in call_ids]

    assert [r["state"] for r in records] == ["active"] * CALLS, "a call was dropped"
    assert at_provider == ["active"] * CALLS
    for record, output in zip(records, outputs, strict=True):
        handoffs = record["handoffs"]
        assert len(handoffs) == 2
        assert [h["state"] for h in handoffs] == ["completed", "completed"]
        assert output == {h["tool_call_id"]: 1 for h in handoffs}, "a handoff lost or doubled"


# Instances gone, and their results

# An instance reads worker answers for its calls from its own results stream, whose key names
# the instance. A new process is a new instance, so the streams of those gone must go with them.


async def results_stream_made_by(redis: Redis, instance: str) -> None:
    """Wait until `instance` reads its results (its reader makes the stream)."""

    async def made() -> bool:
        return bool(await redis.exists(KEYS.results(instance)))

    await until(made)


async def test_a_cleanly_stopped_instance_leaves_no_results_stream(
    cluster: Cluster, http: httpx.AsyncClient, redis: Redis
) -> None:
    b = cluster.urls["b"]
    call_id = await start_call(http, b)
    await ask_for_a_handoff(http, b, call_id)
    await wait_until(http, b, call_id, handoffs_answered, "answered its handoff")
    cluster.stop("b")
    assert await redis.exists(KEYS.results("b")) == 0
    assert "b" not in await redis.zrange(KEYS.instances, 0, -1)


async def test_a_killed_instances_empty_results_stream_is_removed_once_it_is_forgotten(
    cluster: Cluster, redis: Redis
) -> None:
    await results_stream_made_by(redis, "a")
    cluster.kill("a")

    async def forgotten_with_its_results() -> bool:
        known = await redis.zrange(KEYS.instances, 0, -1)
        return "a" not in known and not await redis.exists(KEYS.results("a"))

    await until(forgotten_with_its_results, WAIT_S)


async def test_an_answer_left_at_a_killed_instance_outlives_its_clean_up_for_the_calls_successor(
    cluster: Cluster, http: httpx.AsyncClient, redis: Redis
) -> None:
    a, b = cluster.urls["a"], cluster.urls["b"]
    # No instance is left to take the call over until the clean-up has looked at `a`.
    cluster.stop("b")
    call_id = await start_call(http, a)
    await ask_for_a_handoff(http, a, call_id)
    # Running: the worker has it, so its answer goes to `a` (a handoff only queued may not
    # have reached Redis yet; its successor queues it again instead).
    await wait_until(http, a, call_id, lambda r: handoffs_in(r, "running"), "started its handoff")
    cluster.kill("a")

    async def answer_left_at_a() -> bool:
        entries = await redis.xrange(KEYS.results("a")) or []
        events = [json.loads((fields or {})["event"]) for _, fields in entries]
        return any(event["kind"] == "result" for event in events)

    async def gone_long_enough() -> bool:
        lapsed_at = await redis.zscore(KEYS.instances, "a")
        horizon_ms = FORGET_AFTER_LEASES * LEASE_S * 1000
        return lapsed_at is not None and lapsed_at <= (
            await redis_now_ms(redis, KEYS.instances) - horizon_ms
        )

    await until(answer_left_at_a, WAIT_S)
    await until(gone_long_enough, WAIT_S)
    # What every instance runs after renewing its leases.
    forgotten = await CallLeases(redis, "c", lease_s=LEASE_S, keys=KEYS).forget_lapsed()
    cluster.start_instance("b")
    record = await wait_until(http, b, call_id, handoffs_answered, "answered its handoff")
    outputs = (await provider_record(http, cluster, call_id))["function_call_outputs"]

    assert forgotten == []
    [handoff] = record["handoffs"]
    assert (record["owner"], handoff["state"]) == ("b", "completed")
    assert outputs == {handoff["tool_call_id"]: 1}, "the answer reached the model once"


async def test_a_handoff_its_killed_owner_saved_but_never_queued_is_queued_by_its_successor(
    cluster: Cluster, http: httpx.AsyncClient, redis: Redis
) -> None:
    a, b = cluster.urls["a"], cluster.urls["b"]
    cluster.stop("b")
    cluster.worker.stop()
    call_id = await start_call(http, a)
    await ask_for_a_handoff(http, a, call_id)
    store = CallStore(redis, keys=KEYS, events_maxlen=100, retention_s=60.0)
    handoff_ids: list[str] = []

    async def saved_with_its_handoff() -> bool:
        stored = await store.load(call_id)
        handoff_ids[:] = (
            [d["handoff_id"] for d in stored.core["pending_delegations"]] if stored else []
        )
        return bool(handoff_ids)

    await until(saved_with_its_handoff)
    cluster.kill("a")
    # What Redis holds had `a` died between saving the handoff and sending it.
    await redis.xtrim(KEYS.handoffs, maxlen=0)
    await redis.delete(*(KEYS.handoff_mark(h) for h in handoff_ids))
    cluster.worker.start()
    cluster.start_instance("b")
    record = await wait_until(http, b, call_id, handoffs_answered, "answered its handoff")
    outputs = (await provider_record(http, cluster, call_id))["function_call_outputs"]

    [handoff] = record["handoffs"]
    assert (record["owner"], handoff["state"]) == ("b", "completed")
    assert outputs == {handoff["tool_call_id"]: 1}, "the answer reached the model once"


# Redis losing its data


async def test_after_flushall_a_live_call_is_registered_again_and_never_unknown(
    cluster: Cluster, http: httpx.AsyncClient, redis: Redis
) -> None:
    a, b = cluster.urls["a"], cluster.urls["b"]
    call_id = await start_call(http, a)
    await wait_until(http, b, call_id, lambda r: r["state"] == "active", "became active")
    await redis.flushall()
    statuses = []
    deadline = time.monotonic() + 3 * LEASE_S
    while time.monotonic() < deadline:
        statuses.append((await http.get(f"{b}/v1/calls/{call_id}")).status_code)
    owner = await redis.get(KEYS.lease(call_id))
    assert set(statuses) == {200}
    assert owner == "a"
