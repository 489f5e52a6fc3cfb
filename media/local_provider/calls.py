"""The local provider's calls: one record per call with its subscribers, and the registry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Literal, Protocol

import av
from aiortc import RTCPeerConnection

from media.local_provider.config import LocalProviderConfig
from media.local_provider.model import Conversation
from media.local_provider.server_events import JsonObject
from media.local_provider.speech import ProviderSpeech
from media.local_provider.voice import ReplyVoice
from media.speech.recognizer_pool import RecognitionFailed, RecognizerPool
from media.speech.synthesis import SynthesisError
from media.speech.utterances import UtteranceSegmenter
from media.speech.vad import SpeechStarted, UtteranceEnded, VadEvent
from signaling.ids import CallId

CallState = Literal["active", "ended"]

_ID_ALPHABET = string.ascii_letters + string.digits

log = logging.getLogger("callbridge.provider")


def new_call_id() -> CallId:
    """`rtc_` and 24 random letters and digits, like the provider's own ids."""
    return CallId("rtc_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24)))


class EventSink(Protocol):
    """Somewhere a call's server events go: a sideband WebSocket or the data channel."""

    async def send_event(self, event: JsonObject) -> bool:
        """Deliver `event`; False when the sink is gone and should be dropped."""
        ...

    async def close(self) -> None:
        """The call has ended: let the other side know."""
        ...


class LocalCall:
    """One call: its conversation, its WebRTC peer (with media), and who hears its events.

    Every server event goes to every subscriber, in the order the conversation produced it;
    a lock serialises "feed the conversation, broadcast the result" so that subscribers on
    different transports all see one order. A subscriber gets the events from its subscription
    on: the conversation goes on with no subscriber at all, and what it made meanwhile is never
    replayed, as at the real provider (it can be fetched with `conversation.item.retrieve`).

    With `speech`, the caller's audio is heard as the real API's server VAD hears it (speech
    start and stop as they happen, then the transcription) and replies are spoken, as far as
    the provider has a recognizer and a synthesizer; a spoken reply is framed by
    `output_audio_buffer.started` / `.stopped`, and caller speech cuts it short (barge-in).
    Without `speech` (a plain WebSocket session) the call has no audio at all.
    """

    def __init__(
        self,
        call_id: CallId,
        conversation: Conversation,
        *,
        reply_delay_s: float,
        created_at: float,
        speech: ProviderSpeech | None = None,
        on_ended: Callable[[LocalCall], None] | None = None,
    ) -> None:
        self.call_id = call_id
        self.conversation = conversation
        self.created_at = created_at
        self.peer: RTCPeerConnection | None = None
        self.voice = ReplyVoice()
        self.inbound_audio_frames = 0
        self._recognizers: RecognizerPool | None = speech.recognizers if speech else None
        self._has_voice = speech is not None
        self._speaker = speech if speech is not None and speech.can_speak else None
        self._heard: asyncio.Queue[VadEvent] = asyncio.Queue()
        self._listening = False
        # Set when the reply playing now is cut short (barge-in or `output_audio_buffer.clear`).
        self._cut = asyncio.Event()
        self._hearing = UtteranceSegmenter()
        # Utterances are transcribed, and replies synthesized, one at a time and in order, so
        # that neither overtakes the one before.
        self._transcribing = asyncio.Lock()
        self._synthesizing = asyncio.Lock()
        self._reply_delay_s = reply_delay_s
        self._state: CallState = "active"
        self._subscribers: list[EventSink] = []
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reply_scheduled_for: str | None = None
        self._on_ended = on_ended

    @property
    def state(self) -> CallState:
        """Active until hung up, expired or shut down; then ended."""
        return self._state

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` as a task owned by the call: cancelled when the call ends."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def subscribe(self, sink: EventSink) -> None:
        """Send `sink` the `session.created` greeting, then every later server event."""
        async with self._lock:
            if self._state != "active":
                await sink.close()
                return
            if await sink.send_event(self.conversation.session_created()):
                self._subscribers.append(sink)

    def unsubscribe(self, sink: EventSink) -> None:
        """Stop sending to `sink` (its connection went away)."""
        if sink in self._subscribers:
            self._subscribers.remove(sink)

    async def handle_client_text(self, text: str) -> None:
        """Feed one client message to the conversation and broadcast what it answers."""
        async with self._lock:
            if self._state != "active":
                return
            await self._broadcast(self.conversation.handle_client_text(text))
            self._schedule_reply()

    async def speech_started(self, start_ms: int) -> None:
        """The caller began speaking at `start_ms` of their audio: VAD event, maybe barge-in."""
        async with self._lock:
            if self._state == "active":
                played_ms = self.voice.played_ms
                await self._broadcast(
                    self.conversation.speech_started(start_ms, played_ms=played_ms)
                )

    async def user_spoke(self, text: str, *, audio_ms: tuple[int, int] | None = None) -> None:
        """Broadcast the events of the user saying `text`, heard at `audio_ms` if known."""
        async with self._lock:
            if self._state != "active":
                return
            await self._broadcast(self.conversation.user_spoke(text, audio_ms=audio_ms))
            self._schedule_reply()

    def on_user_audio(self, frame: av.AudioFrame) -> None:
        """One 20 ms frame of the caller's audio: counted, and transcribed when it is speech."""
        self.inbound_audio_frames += 1
        recognizers = self._recognizers
        if recognizers is None or self._state != "active":
            return
        for event in self._hearing.hear(frame):
            if isinstance(event, SpeechStarted):
                recognizers.warm_up()
            self._heard.put_nowait(event)
            if not self._listening:
                self._listening = True
                self.spawn(self._listen(recognizers))

    async def end(self) -> bool:
        """End the call: close sideband sockets and the peer. False if it had already ended."""
        if self._state == "ended":
            return False
        self._state = "ended"
        if self._on_ended is not None:
            self._on_ended(self)
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        subscribers, self._subscribers = self._subscribers, []
        for sink in subscribers:
            await sink.close()
        if self.peer is not None:
            await self.peer.close()
        return True

    def debug_record(self) -> JsonObject:
        """What tests and operators want to know about the call."""
        return {
            "call_id": self.call_id,
            "state": self._state,
            "media": self.peer is not None,
            "session_id": self.conversation.session["id"],
            "subscribers": len(self._subscribers),
            "inbound_audio_frames": self.inbound_audio_frames,
            "user_speaking": self._hearing.in_speech,
            "speaking": self.voice.speaking,
            "client_event_types": [event.get("type") for event in self.conversation.client_events],
            "function_call_outputs": self.conversation.function_call_output_counts(),
            "items": self.conversation.item_outline(),
        }

    async def _broadcast(self, events: list[JsonObject]) -> None:
        if any(event["type"] == "output_audio_buffer.cleared" for event in events):
            self.voice.clear()
            self._cut.set()
        for event in events:
            for sink in list(self._subscribers):
                if not await sink.send_event(event):
                    self.unsubscribe(sink)

    def _schedule_reply(self) -> None:
        response_id = self.conversation.active_response_id
        if response_id is not None and response_id != self._reply_scheduled_for:
            self._reply_scheduled_for = response_id
            self.spawn(self._reply(response_id))

    async def _reply(self, response_id: str) -> None:
        await asyncio.sleep(self._reply_delay_s)
        async with self._lock:
            # The response may have been cancelled (and another started) while we slept.
            if self._state != "active" or self.conversation.active_response_id != response_id:
                return
            events = self.conversation.finish_response()
            await self._broadcast(events)
        if not self._has_voice:
            return
        for event in events:
            if event["type"] == "response.output_audio_transcript.done":
                self.spawn(self._say(response_id, event["transcript"]))

    async def _listen(self, recognizers: RecognizerPool) -> None:
        """Report what the VAD heard, in order; transcribe each utterance in the background."""
        while True:
            heard = await self._heard.get()
            if isinstance(heard, SpeechStarted):
                await self.speech_started(heard.start_ms)
                continue
            async with self._lock:
                if self._state != "active":
                    return
                events, item_id = self.conversation.speech_stopped(heard.end_ms)
                await self._broadcast(events)
            self.spawn(self._transcribe(recognizers, heard, item_id))

    async def _transcribe(
        self, recognizers: RecognizerPool, utterance: UtteranceEnded, item_id: str
    ) -> None:
        async with self._transcribing:
            try:
                recognition = await recognizers.transcribe(utterance.pcm)
            except RecognitionFailed as exc:
                log.warning("call %s: speech recognition failed: %s", self.call_id, exc)
                events = self.conversation.speech_not_transcribed(item_id, str(exc))
            else:
                log.debug(
                    "call %s: heard %r (%s, %.0f ms)",
                    self.call_id,
                    recognition.text,
                    recognition.source,
                    recognition.seconds * 1000,
                )
                events = self.conversation.speech_transcribed(item_id, recognition.text)
            async with self._lock:
                if self._state != "active":
                    return
                await self._broadcast(events)
                self._schedule_reply()

    async def _say(self, response_id: str, transcript: str) -> None:
        """Speak the reply of `response_id`, between `output_audio_buffer.started` and `.stopped`.

        Replies are spoken one at a time, in the order they were made.
        """
        async with self._synthesizing:
            pcm = await self._synthesize(transcript)
            async with self._lock:
                events = self.conversation.audio_started(response_id)
                if self._state != "active" or not events:
                    return
                self._cut.clear()
                seconds = (
                    self.voice.say(pcm) if pcm is not None else self.voice.tone_for(transcript)
                )
                await self._broadcast(events)
            # The track pulls a frame every 20 ms, so the reply has played after its duration
            # unless it was cut short first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._cut.wait(), seconds)
            async with self._lock:
                if self._state == "active":
                    await self._broadcast(self.conversation.audio_stopped(response_id))

    async def _synthesize(self, transcript: str) -> bytes | None:
        """`transcript` spoken, or None when the reply is a tone (no or a failing synthesizer)."""
        if self._speaker is None:
            return None
        try:
            return await self._speaker.speech_for(transcript)
        except SynthesisError as exc:
            log.warning("call %s: speech synthesis failed: %s", self.call_id, exc)
            return None


class CallRegistry:
    """All calls of one provider instance, by id: the active ones, and the last
    `config.ended_calls_kept` ended ones (so that a request for a call that just ended is
    answered as for an ended call), each for at most twice `config.call_ttl_s`."""

    def __init__(
        self, config: LocalProviderConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._clock = clock
        self._calls: dict[str, LocalCall] = {}
        # Ended calls' ids, the earliest ended first.
        self._ended: dict[str, None] = {}
        self._speech = ProviderSpeech(config)

    def create(
        self,
        session: Mapping[str, Any] | None = None,
        *,
        call_id: CallId | None = None,
        audio: bool = True,
    ) -> LocalCall:
        """Register a new active call whose session starts from `session`.

        `call_id`: the id a phone call was announced with (default: a new one).
        `audio`: False for a call that has no media at all (a plain WebSocket session).

        Raises ValueError when `session` is not an acceptable GA session object.
        """
        # Without media (capacity runs) there is no track to hear or to speak into.
        audio = audio and self._config.media
        conversation = Conversation(
            trigger_phrase=self._config.trigger_phrase, session=session, plays_audio=audio
        )
        call = LocalCall(
            call_id or new_call_id(),
            conversation,
            reply_delay_s=self._config.reply_delay_s,
            created_at=self._clock(),
            speech=self._speech if audio else None,
            on_ended=self._ended_one,
        )
        self._calls[call.call_id] = call
        return call

    def _ended_one(self, call: LocalCall) -> None:
        if call.call_id in self._calls:
            self._ended[call.call_id] = None
        while len(self._ended) > self._config.ended_calls_kept:
            oldest = next(iter(self._ended))
            del self._ended[oldest]
            del self._calls[oldest]

    def call_ids(self) -> list[str]:
        """The ids of every call the registry knows, active or ended, oldest first."""
        return list(self._calls)

    def get(self, call_id: str) -> LocalCall | None:
        """The call with this id, active or ended, if the registry still knows it."""
        return self._calls.get(call_id)

    def active(self, call_id: str) -> LocalCall | None:
        """The call with this id if it is still active."""
        call = self._calls.get(call_id)
        return call if call is not None and call.state == "active" else None

    def forget(self, call: LocalCall) -> None:
        """Drop `call` without a trace (its creation failed half-way, or it ended long ago)."""
        self._calls.pop(call.call_id, None)
        self._ended.pop(call.call_id, None)

    async def sweep(self) -> None:
        """End calls older than the TTL; forget ended calls once they are that old too."""
        now = self._clock()
        ttl = self._config.call_ttl_s
        for call in list(self._calls.values()):
            if now - call.created_at < ttl:
                continue
            if call.state == "active":
                await call.end()
            elif now - call.created_at >= 2 * ttl:
                self.forget(call)

    async def end_all(self) -> None:
        """End every active call (provider shutdown)."""
        for call in list(self._calls.values()):
            await call.end()

    def close(self) -> None:
        """Release what the calls shared (speech recognition workers); after `end_all`."""
        self._speech.close()
