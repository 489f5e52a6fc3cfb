"""`Last-Event-ID` on a call's event stream, in memory and with Redis: an id the stream never
sent is a 400; one older than the history kept starts the stream with a `stream.gap` event; an
ended call's stream replays what is kept and closes, alike on both backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.calls.store import CallStore, StoredCall
from service.calls.stream import follow
from service.redis_keys import RedisKeys
from tests.e2e.conftest import RunningService, StartService
from tests.e2e.hostile import assert_problem
from tests.e2e.redis_server import RedisServer
from tests.unit.sdp_samples import AIORTC_OFFER

KEPT = 10


@dataclass(frozen=True)
class Frame:
    """One received Server-Sent Event."""

    id: str
    event: str
    data: dict[str, Any]


async def _frames(
    client: httpx.AsyncClient, path: str, count: int, last_event_id: str | None = None
) -> list[Frame]:
    """The first `count` events of the stream at `path`."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    frames: list[Frame] = []
    fields: dict[str, str] = {}
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line == "" and "data" in fields:
                frames.append(Frame(fields["id"], fields["event"], json.loads(fields["data"])))
                fields = {}
                if len(frames) == count:
                    break
            elif ":" in line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.strip()
    return frames


async def _all_frames(
    client: httpx.AsyncClient, path: str, last_event_id: str | None = None
) -> list[Frame]:
    """Every event of the stream at `path`, read until the server closes it."""
    return await _frames(client, path, -1, last_event_id)


async def _started_call(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
    )
    assert response.status_code == 201, response.text
    return str(response.headers["location"])


@dataclass
class Stream:
    """A live call whose events the test reads."""

    client: httpx.AsyncClient
    location: str


@pytest.fixture
async def memory_call(start_service: StartService) -> AsyncIterator[Stream]:
    service = await start_service(local_media=False, call_events_kept=KEPT)
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        location = await _started_call(client)
        yield Stream(client, location)
        await client.delete(location)


@pytest.fixture
async def redis_call(
    start_service: StartService, redis_server: RedisServer, redis: Redis
) -> AsyncIterator[Stream]:
    # Approximate trimming removes whole stream nodes: small nodes make it trim within a test.
    await redis.config_set("stream-node-max-entries", 2)
    service: RunningService = await start_service(
        local_media=False, call_events_kept=KEPT, queue=redis_server.url
    )
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        location = await _started_call(client)
        yield Stream(client, location)
        await client.delete(location)


@pytest.fixture(params=["memory", "redis"])
def either_call(request: pytest.FixtureRequest) -> Stream:
    """The same test on one instance without Redis and with it."""
    stream: Stream = request.getfixturevalue(f"{request.param}_call")
    return stream


async def _hang_up(stream: Stream) -> None:
    response = await stream.client.post(f"{stream.location}/hangup")
    assert response.status_code == 200, response.text


def _ends_the_call(frame: Frame) -> bool:
    return frame.event == "call.state" and frame.data["state"] == "ended"


async def _a_sent_id(stream: Stream) -> str:
    return (await _frames(stream.client, f"{stream.location}/events", 1))[0].id


async def _unissued_is_a_400(stream: Stream, unissued: str) -> None:
    response = await stream.client.get(
        f"{stream.location}/events", headers={"Last-Event-ID": unissued}
    )
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 400)


async def test_memory_a_last_event_id_beyond_the_last_sent_is_a_400(memory_call: Stream) -> None:
    await _a_sent_id(memory_call)
    await _unissued_is_a_400(memory_call, "999999")


async def test_redis_a_last_event_id_beyond_the_last_sent_is_a_400(redis_call: Stream) -> None:
    await _a_sent_id(redis_call)
    await _unissued_is_a_400(redis_call, "9999999999999-0")


async def test_memory_resuming_from_the_last_sent_id_is_accepted(memory_call: Stream) -> None:
    sent = await _a_sent_id(memory_call)
    response = await memory_call.client.post(
        f"{memory_call.location}/messages", json={"text": "more"}
    )
    assert response.status_code == 202
    frames = await _frames(memory_call.client, f"{memory_call.location}/events", 1, sent)
    assert frames[0].event != "stream.gap"
    assert int(frames[0].id) == int(sent) + 1


def _order(event_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in event_id.split("-"))


async def _resumed_from_before_the_history(stream: Stream, first_sent: str) -> list[Frame]:
    """Resume after `first_sent` once it has left the history: the gap event, then the first
    event kept."""
    await _overflow_history_since(stream, first_sent)
    frames = await _frames(stream.client, f"{stream.location}/events", 2, first_sent)
    assert frames[0].event == "stream.gap"
    assert frames[0].data == {"last_event_id": first_sent, "resumes_after": frames[0].id}
    assert _order(first_sent) < _order(frames[0].id) < _order(frames[1].id)
    return frames


async def _overflow_history_since(stream: Stream, first_sent: str) -> list[Frame]:
    """Send messages until the oldest event kept is no longer `first_sent`; the stream's
    first replayed event then."""
    for turn in range(KEPT):
        response = await stream.client.post(
            f"{stream.location}/messages", json={"text": f"turn {turn}"}
        )
        assert response.status_code == 202, response.text
        frames = await _frames(stream.client, f"{stream.location}/events", 1)
        if frames[0].id != first_sent:
            return frames
    raise AssertionError("the call never published more events than are kept")


async def test_memory_an_id_older_than_the_history_starts_with_a_gap_event(
    memory_call: Stream,
) -> None:
    first_sent = await _a_sent_id(memory_call)
    await _resumed_from_before_the_history(memory_call, first_sent)


async def test_redis_an_id_older_than_the_history_starts_with_a_gap_event(
    redis_call: Stream,
) -> None:
    first_sent = await _a_sent_id(redis_call)
    await _resumed_from_before_the_history(redis_call, first_sent)


async def test_memory_resuming_from_a_gap_event_id_has_no_second_gap(memory_call: Stream) -> None:
    first_sent = await _a_sent_id(memory_call)
    gap = (await _resumed_from_before_the_history(memory_call, first_sent))[0]
    frames = await _frames(memory_call.client, f"{memory_call.location}/events", 1, gap.id)
    assert frames[0].event != "stream.gap"


async def test_redis_resuming_before_any_trimming_has_no_gap(redis_call: Stream) -> None:
    response = await redis_call.client.post(
        f"{redis_call.location}/messages", json={"text": "more"}
    )
    assert response.status_code == 202
    frames = await _frames(redis_call.client, f"{redis_call.location}/events", 2)
    resumed = await _frames(redis_call.client, f"{redis_call.location}/events", 1, frames[0].id)
    assert resumed[0] == frames[1]


async def test_redis_a_follower_that_falls_behind_the_trimming_is_told_of_the_gap(
    redis: Redis,
) -> None:
    await redis.config_set("stream-node-max-entries", 2)
    store = CallStore(redis, keys=RedisKeys("test"), events_maxlen=KEPT, retention_s=60)
    state = StoredCall({}, {}, {})
    await store.save("rtc_lag", state, [("tick", {"n": 0})], ended=False)
    events = follow(store, "rtc_lag", "0", keepalive_s=1.0)
    first = await anext(events)
    assert first is not None
    # While the follower is not reading, four logs' worth of events are added (and trimmed).
    burst = [("tick", {"n": n}) for n in range(1, 4 * KEPT)]
    await store.save("rtc_lag", state, burst, ended=False)
    gap, resumed = await anext(events), await anext(events)
    await events.aclose()
    assert gap is not None
    assert resumed is not None
    assert gap.name == "stream.gap"
    assert gap.data == {"last_event_id": first.event_id, "resumes_after": gap.event_id}
    assert resumed.data["n"] > 1


async def test_resuming_an_ended_call_replays_the_events_after_the_id_and_closes(
    either_call: Stream,
) -> None:
    events = f"{either_call.location}/events"
    sent = await _a_sent_id(either_call)
    response = await either_call.client.post(
        f"{either_call.location}/messages", json={"text": "more"}
    )
    assert response.status_code == 202
    await _hang_up(either_call)
    resumed = await _all_frames(either_call.client, events, sent)
    everything = await _all_frames(either_call.client, events)
    assert resumed == everything[[f.id for f in everything].index(sent) + 1 :]
    assert _ends_the_call(resumed[-1])


async def test_an_ended_calls_stream_without_an_id_replays_from_the_start_and_closes(
    either_call: Stream,
) -> None:
    first_sent = await _a_sent_id(either_call)
    await _hang_up(either_call)
    frames = await _all_frames(either_call.client, f"{either_call.location}/events")
    assert frames[0].id == first_sent
    assert _ends_the_call(frames[-1])
    assert [f for f in frames if _ends_the_call(f)] == [frames[-1]]


async def test_resuming_an_ended_call_after_its_last_event_closes_at_once(
    either_call: Stream,
) -> None:
    events = f"{either_call.location}/events"
    await _a_sent_id(either_call)
    await _hang_up(either_call)
    last = (await _all_frames(either_call.client, events))[-1]
    assert await _all_frames(either_call.client, events, last.id) == []


async def test_resuming_an_ended_call_from_an_id_never_sent_is_a_400(either_call: Stream) -> None:
    await _a_sent_id(either_call)
    await _hang_up(either_call)
    last = (await _all_frames(either_call.client, f"{either_call.location}/events"))[-1]
    ms, _, seq = last.id.partition("-")
    unissued = f"{ms}-{int(seq) + 1}" if seq else str(int(ms) + 1)
    await _unissued_is_a_400(either_call, unissued)


async def test_resuming_an_ended_call_from_before_the_history_starts_with_a_gap_event(
    either_call: Stream,
) -> None:
    first_sent = await _a_sent_id(either_call)
    await _overflow_history_since(either_call, first_sent)
    await _hang_up(either_call)
    frames = await _all_frames(either_call.client, f"{either_call.location}/events", first_sent)
    assert frames[0].event == "stream.gap"
    assert frames[0].data == {"last_event_id": first_sent, "resumes_after": frames[0].id}
    assert _ends_the_call(frames[-1])


async def test_redis_a_last_event_id_whose_part_exceeds_a_stream_id_is_a_400(
    redis_call: Stream,
) -> None:
    # The shape (20 digits a part) passes and it is below every id sent, but Redis refuses a
    # part over 2**64 - 1 in XRANGE: the stream used to answer 200 and then spin on that
    # refusal for good, sending keepalives every 0.5 s and never an event, even the call's end.
    await _a_sent_id(redis_call)
    async with redis_call.client.stream(
        "GET", f"{redis_call.location}/events", headers={"Last-Event-ID": "1-99999999999999999999"}
    ) as response:
        assert response.status_code == 400
        body = json.loads(await response.aread())
        assert_problem(response.status_code, response.headers["content-type"], body, 400)


async def test_redis_a_stream_whose_log_redis_refuses_to_read_ends_rather_than_spinning(
    redis_call: Stream, redis: Redis
) -> None:
    await _a_sent_id(redis_call)
    # A key of the wrong type: every read of it is refused (WRONGTYPE), not an outage.
    events = RedisKeys().events(redis_call.location.rsplit("/", 1)[1])
    await redis.delete(events)
    await redis.set(events, "not a stream")
    async with asyncio.timeout(30):
        await _all_frames(redis_call.client, f"{redis_call.location}/events")
