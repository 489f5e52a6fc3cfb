"""Sideband ingest: `CallState.feed_raw` against the openai SDK's realtime event models.

Builds one long GA call in memory (transcript and audio deltas, items, responses, handoffs),
then times, over exactly the same messages:

- callbridge `CallState.feed_raw` (parse plus the whole state machine), and `parse_server_event`
  alone;
- openai `RealtimeServerEvent` through a pydantic `TypeAdapter.validate_json`, as shipped;
- the same SDK models in a union pydantic knows to discriminate on `type`. The shipped alias
  marks its discriminator in SDK-private metadata that pydantic ignores, so the shipped adapter
  tries the members one by one; this line shows how much of the gap that alone explains.

Each figure is the best of `--runs`. Run: `.venv/bin/python bench/sideband_ingest.py [--events N]`.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Union, get_args

from openai.types.realtime import RealtimeServerEvent
from pydantic import Field, TypeAdapter

from signaling.realtime import CallState, EnqueueHandoff
from signaling.realtime.client_events import SessionConfig
from signaling.realtime.events import parse_server_event

# The shipped SDK adapter manages under 10,000 events/s; this default keeps a full run, all
# baselines included, at about half a minute.
DEFAULT_EVENTS = 60_000
CALL_ID = "rtc_u0_BenchBenchBenchBench01"
SPEECH = (
    "the build is green again and the deploy to staging finished so we can look at "
    "latency numbers for the new café branch 🚀 before lunch today if nobody objects "
    "please summarise the open pull requests and tell me which ones need a review"
)
WORDS = SPEECH.split()


class _Recorder:
    """Writes the server side of a plausible GA call, one turn at a time."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._events: list[str] = []
        self._counter = 0
        self._last_item: str | None = None
        self.turns = 0
        self.handoffs = 0
        # 40 ms of 24 kHz mono PCM16, base64-encoded as the provider sends it.
        self._audio = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(1920))).decode()

    def _next(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter:09d}"

    def _emit(self, event_type: str, **fields: Any) -> None:
        event = {"type": event_type, "event_id": self._next("event"), **fields}
        self._events.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    def _sentence(self) -> str:
        return " ".join(self._rng.choices(WORDS, k=self._rng.randint(6, 24))) + "."

    def _pieces(self, text: str) -> list[str]:
        # Providers cut deltas anywhere, including inside words.
        cuts = sorted(self._rng.sample(range(1, len(text)), k=min(len(text) - 1, len(text) // 6)))
        return [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True)]

    def _item_added_and_done(self, item: dict[str, Any], done_item: dict[str, Any]) -> None:
        previous = self._last_item
        self._emit("conversation.item.added", previous_item_id=previous, item=item)
        self._emit("conversation.item.done", previous_item_id=previous, item=done_item)
        self._last_item = item["id"]

    def turn(self, *, handoff: bool) -> None:
        """One user utterance and the model's spoken answer, optionally with a handoff."""
        self.turns += 1
        user_item = self._next("item")
        self._emit("input_audio_buffer.speech_started", audio_start_ms=1000, item_id=user_item)
        self._emit("input_audio_buffer.speech_stopped", audio_end_ms=2500, item_id=user_item)
        self._emit(
            "input_audio_buffer.committed", previous_item_id=self._last_item, item_id=user_item
        )
        audio_item = {
            "id": user_item,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self._item_added_and_done(audio_item, audio_item)
        question = self._sentence()
        response_id = self._next("resp")
        self._emit(
            "response.created",
            response={"object": "realtime.response", "id": response_id, "status": "in_progress"},
        )
        self._emit(
            "rate_limits.updated",
            rate_limits=[
                {"name": "tokens", "limit": 40000, "remaining": 39000, "reset_seconds": 1}
            ],
        )
        # The user's transcription lands while the answer is already streaming.
        user_pieces = self._pieces(question)
        answer = self._sentence()
        answer_item = self._next("item")
        ids = {"response_id": response_id, "item_id": answer_item, "output_index": 0}
        empty = {
            "id": answer_item,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self._emit(
            "response.output_item.added", response_id=response_id, output_index=0, item=empty
        )
        self._emit("conversation.item.added", previous_item_id=user_item, item=empty)
        part = {"type": "audio", "transcript": ""}
        self._emit("response.content_part.added", **ids, content_index=0, part=part)
        self._emit("output_audio_buffer.started", response_id=response_id)
        for index, piece in enumerate(self._pieces(answer)):
            self._emit(
                "response.output_audio_transcript.delta", **ids, content_index=0, delta=piece
            )
            self._emit("response.output_audio.delta", **ids, content_index=0, delta=self._audio)
            if index < len(user_pieces):
                self._emit(
                    "conversation.item.input_audio_transcription.delta",
                    item_id=user_item,
                    content_index=0,
                    delta=user_pieces[index],
                )
        self._emit(
            "conversation.item.input_audio_transcription.completed",
            item_id=user_item,
            content_index=0,
            transcript=question,
            usage={"type": "duration", "seconds": 2},
        )
        self._emit("response.output_audio.done", **ids, content_index=0)
        self._emit(
            "response.output_audio_transcript.done", **ids, content_index=0, transcript=answer
        )
        done_part = {"type": "audio", "transcript": answer}
        self._emit("response.content_part.done", **ids, content_index=0, part=done_part)
        spoken = {
            **empty,
            "status": "completed",
            "content": [{"type": "output_audio", "transcript": answer}],
        }
        self._emit(
            "response.output_item.done", response_id=response_id, output_index=0, item=spoken
        )
        self._emit("conversation.item.done", previous_item_id=user_item, item=spoken)
        self._last_item = answer_item
        if handoff:
            self._function_call(response_id, question)
        self._emit(
            "response.done",
            response={"object": "realtime.response", "id": response_id, "status": "completed"},
        )
        self._emit("output_audio_buffer.stopped", response_id=response_id)

    def _function_call(self, response_id: str, request: str) -> None:
        self.handoffs += 1
        item_id = self._next("item")
        call_id = self._next("call")
        arguments = json.dumps({"prompt": request})
        base = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "call_id": call_id,
            "name": "background_agent",
        }
        started = {**base, "status": "in_progress", "arguments": ""}
        finished = {**base, "status": "completed", "arguments": arguments}
        ids = {"response_id": response_id, "item_id": item_id, "output_index": 1}
        self._emit(
            "response.output_item.added", response_id=response_id, output_index=1, item=started
        )
        self._emit("conversation.item.added", previous_item_id=self._last_item, item=started)
        for piece in self._pieces(arguments):
            self._emit(
                "response.function_call_arguments.delta", **ids, call_id=call_id, delta=piece
            )
        self._emit(
            "response.function_call_arguments.done",
            **ids,
            call_id=call_id,
            name="background_agent",
            arguments=arguments,
        )
        self._emit(
            "response.output_item.done", response_id=response_id, output_index=1, item=finished
        )
        self._emit("conversation.item.done", previous_item_id=self._last_item, item=finished)
        self._last_item = item_id

    def record(self, count: int) -> list[str]:
        """At least `count` events: a session start, then turns, every tenth with a handoff."""
        session = {"type": "realtime", "object": "realtime.session", "id": "sess_bench"}
        self._emit("session.created", session=session)
        self._emit("session.updated", session=session)
        while len(self._events) < count:
            self.turn(handoff=self.turns % 10 == 9)
        return self._events[:count]


def _best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def _feed_all(events: Sequence[str]) -> int:
    state = CallState(CALL_ID, SessionConfig())
    state.start(0.0)
    state.link_opened(0.0)
    handoffs = 0
    for raw in events:
        for action in state.feed_raw(raw):
            if isinstance(action, EnqueueHandoff):
                handoffs += 1
    return handoffs


def main() -> None:
    """Build the call, time every contender, print events/s and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="events in the call")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per contender (best)")
    parser.add_argument("--seed", type=int, default=7, help="seed for the recorded call")
    args = parser.parse_args()

    recorder = _Recorder(random.Random(args.seed))
    events = recorder.record(args.events)
    size_mb = sum(len(raw) for raw in events) / 1e6
    handoffs = _feed_all(events)

    sdk = TypeAdapter(RealtimeServerEvent)
    members = get_args(get_args(RealtimeServerEvent)[0])
    # Union[...] over a runtime tuple has no static type; the adapter is only ever timed.
    union: Any = Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007
    discriminated: TypeAdapter[Any] = TypeAdapter(union)

    def parse_only() -> None:
        for raw in events:
            parse_server_event(raw)

    def sdk_shipped() -> None:
        for raw in events:
            sdk.validate_json(raw)

    def sdk_discriminated() -> None:
        for raw in events:
            discriminated.validate_json(raw)

    timings = {
        "callbridge CallState.feed_raw": _best_of(args.runs, lambda: _feed_all(events)),
        "callbridge parse_server_event": _best_of(args.runs, parse_only),
        "openai RealtimeServerEvent (TypeAdapter)": _best_of(args.runs, sdk_shipped),
        "openai models, discriminated union": _best_of(args.runs, sdk_discriminated),
    }
    count = len(events)
    print(
        f"sideband ingest: {count:,} events ({recorder.turns:,} turns, {handoffs} handoffs, "
        f"{size_mb:.1f} MB), best of {args.runs}"
    )
    for name, seconds in timings.items():
        print(f"  {name:<42} {count / seconds:>12,.0f} events/s  ({seconds:.3f} s)")
    feed = timings["callbridge CallState.feed_raw"]
    shipped = timings["openai RealtimeServerEvent (TypeAdapter)"]
    fair = timings["openai models, discriminated union"]
    print(f"  throughput feed_raw / openai SDK as shipped:        {shipped / feed:.1f}x")
    print(f"  throughput feed_raw / openai models, discriminated: {fair / feed:.1f}x")


if __name__ == "__main__":
    main()
