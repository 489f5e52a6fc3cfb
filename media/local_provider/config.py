"""Settings of the local stand-in provider."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LocalProviderConfig:
    """How the local provider behaves.

    `api_key`: when set, every `/v1` request and the sideband WebSocket must carry
    `Authorization: Bearer <api_key>`.
    `trigger_phrase`: a user message containing it (case-insensitive) makes the offline model
    call the `background_agent` tool.
    `reply_delay_s`: how long a response stays in progress before its output is emitted.
    `media`: False answers offers with a fake SDP and no WebRTC peer (capacity benchmarks).
    `call_ttl_s`: calls older than this are ended by a background sweep.
    """

    api_key: str | None = None
    trigger_phrase: str = "background agent"
    reply_delay_s: float = 0.0
    media: bool = True
    call_ttl_s: float = 3600.0
