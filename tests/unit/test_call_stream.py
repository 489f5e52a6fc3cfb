import asyncio

from service.calls.stream import CallEventStream, StreamEvent


async def _collect(stream: CallEventStream, after: int = 0) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    async for event in stream.subscribe(after):
        assert event is not None
        out.append(event)
    return out


async def test_late_subscriber_gets_history_then_live_events() -> None:
    stream = CallEventStream()
    stream.publish("a", {"n": 1})
    task = asyncio.create_task(_collect(stream))
    await asyncio.sleep(0)
    stream.publish("b", {"n": 2})
    stream.close()
    assert [e.name for e in await task] == ["a", "b"]


async def test_resume_after_a_sequence_number_skips_what_was_seen() -> None:
    stream = CallEventStream()
    for n in range(3):
        stream.publish("e", {"n": n})
    stream.close()
    assert [e.data["n"] for e in await _collect(stream, after=2)] == [2]


async def test_slow_subscriber_is_cut_off_instead_of_buffering_forever() -> None:
    stream = CallEventStream(max_lag=2)
    events = stream.subscribe().__aiter__()
    first: asyncio.Future[StreamEvent | None] = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0)
    for n in range(5):
        stream.publish("e", {"n": n})
    assert (await first) is not None
    seen = [e async for e in events]
    assert len(seen) < 4


async def test_keepalive_yields_none_when_idle() -> None:
    stream = CallEventStream()
    events = stream.subscribe(keepalive_s=0.01).__aiter__()
    assert await events.__anext__() is None
