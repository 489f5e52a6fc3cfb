"""Settings of the local stand-in provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from media.speech.synthesis import DEFAULT_VOICE, ESPEAK_COMMAND

DEFAULT_ASR_PHRASES: tuple[str, ...] = (
    "please ask the background agent what is two plus three",
    "please ask the background agent what is ten times four",
    "ask the background agent what time it is",
    "please ask the background agent to check the weather",
    "hello can you hear me",
    "what time is it",
    "what can you do",
    "yes please",
    "no thank you",
    "thank you goodbye",
)
"""What the offline recognizer expects to hear: the test utterances and a few everyday turns."""


@dataclass(frozen=True)
class LocalProviderConfig:
    """How the local provider behaves.

    `api_key`: when set, every `/v1` request and the sideband WebSocket must carry
    `Authorization: Bearer <api_key>`.
    `trigger_phrase`: a user message containing it (case-insensitive) makes the offline model
    call the `background_agent` tool.
    `reply_delay_s`: how long a response stays in progress before its output is emitted.
    `media`: False answers offers with a fake SDP and no WebRTC peer (capacity benchmarks).
    `call_ttl_s`: calls older than this are ended by a background sweep, and ended calls are
    forgotten once twice as old.
    `ended_calls_kept`: ended calls remembered at most (the earliest ended are forgotten first),
    so that a provider running for long holds a bounded number of them.
    `asr_phrases`: the grammar the caller's speech is decoded against first; speech that
    matches none of them goes to the general English model, which does poorly on synthesized
    voices. Words must be in pocketsphinx's dictionary (write numbers as words).
    `asr_processes`: worker processes decoding speech, shared by all calls.
    `tts_command`: the espeak-ng executable that speaks replies; `tts_voice` its voice.
    `flavor`: `azure` demands `api-key: <api_key>` instead of the bearer header and also serves
    every route under `/openai`, as Azure OpenAI does.
    `webhook_secret`: the `whsec_` secret simulated phone calls sign their webhooks with.
    """

    api_key: str | None = None
    trigger_phrase: str = "background agent"
    reply_delay_s: float = 0.0
    media: bool = True
    call_ttl_s: float = 3600.0
    ended_calls_kept: int = 1000
    asr_phrases: tuple[str, ...] = DEFAULT_ASR_PHRASES
    asr_processes: int = 1
    tts_command: str = ESPEAK_COMMAND
    tts_voice: str = DEFAULT_VOICE
    flavor: Literal["openai", "azure"] = "openai"
    webhook_secret: str | None = None
