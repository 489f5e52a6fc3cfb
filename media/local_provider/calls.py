"""The local provider's calls: one record per call with its subscribers, and the registry."""

from __future__ import annotations

import asyncio
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
from media.speech.vad import SpeechStarted, UtteranceEnded
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
    different transports all see one order.

    With `speech`, the caller's audio is transcribed into user turns and replies are spoken
    (as far as the provider has a recognizer and a synthesizer); without it, the call hears
    text only and answers with a tone.
    """

    def __init__(
        self,
        call_id: CallId,
        conversation: Conversation,
        *,
        reply_delay_s: float,
        created_at: float,
        speech: ProviderSpeech | None = None,
    ) -> None:
        self.call_id = call_id
        self.conversation = conversation
        self.created_at = created_at
        self.peer: RTCPeerConnection | None = None
        self.voice = ReplyVoice()
        self.inbound_audio_frames = 0
        self._recognizers: RecognizerPool | None = speech.recognizers if speech else None
        self._speaker = speech if speech is not None and speech.can_speak else None
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
            else:
                self.spawn(self._transcribe(recognizers, event))

    async def end(self) -> bool:
        """End the call: close sideband sockets and the peer. False if it had already ended."""
        if self._state == "ended":
            return False
        self._state = "ended"
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
        }

    async def _broadcast(self, events: list[JsonObject]) -> None:
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
            for event in events:
                if event["type"] == "response.output_audio_transcript.done":
                    self._voice_reply(event["transcript"])
            await self._broadcast(events)

    async def _transcribe(self, recognizers: RecognizerPool, utterance: UtteranceEnded) -> None:
        async with self._transcribing:
            try:
                recognition = await recognizers.transcribe(utterance.pcm)
            except RecognitionFailed as exc:
                log.warning("call %s: speech recognition failed: %s", self.call_id, exc)
                return
            log.debug(
                "call %s: heard %r (%s, %.0f ms)",
                self.call_id,
                recognition.text,
                recognition.source,
                recognition.seconds * 1000,
            )
            if recognition.text:
                await self.user_spoke(
                    recognition.text, audio_ms=(utterance.start_ms, utterance.end_ms)
                )

    def _voice_reply(self, transcript: str) -> None:
        if self._speaker is None:
            self.voice.tone_for(transcript)
        else:
            self.spawn(self._say(self._speaker, transcript))

    async def _say(self, speech: ProviderSpeech, transcript: str) -> None:
        async with self._synthesizing:
            try:
                pcm = await speech.speech_for(transcript)
            except SynthesisError as exc:
                log.warning("call %s: speech synthesis failed: %s", self.call_id, exc)
                self.voice.tone_for(transcript)
                return
            self.voice.say(pcm)


class CallRegistry:
    """All calls of one provider instance, by id."""

    def __init__(
        self, config: LocalProviderConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._clock = clock
        self._calls: dict[str, LocalCall] = {}
        self._speech = ProviderSpeech(config)

    def create(
        self, session: Mapping[str, Any] | None = None, *, call_id: CallId | None = None
    ) -> LocalCall:
        """Register a new active call whose session starts from `session`.

        `call_id`: the id a phone call was announced with (default: a new one).
        Raises ValueError when `session` is not an acceptable GA session object.
        """
        conversation = Conversation(trigger_phrase=self._config.trigger_phrase, session=session)
        call = LocalCall(
            call_id or new_call_id(),
            conversation,
            reply_delay_s=self._config.reply_delay_s,
            created_at=self._clock(),
            speech=self._speech,
        )
        self._calls[call.call_id] = call
        return call

    def get(self, call_id: str) -> LocalCall | None:
        """The call with this id, active or ended, if the registry still knows it."""
        return self._calls.get(call_id)

    def active(self, call_id: str) -> LocalCall | None:
        """The call with this id if it is still active."""
        call = self._calls.get(call_id)
        return call if call is not None and call.state == "active" else None

    def forget(self, call: LocalCall) -> None:
        """Drop `call` without a trace (its creation failed half-way)."""
        self._calls.pop(call.call_id, None)

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
