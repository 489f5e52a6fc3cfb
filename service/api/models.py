"""Request bodies the API accepts (pydantic, strict shapes)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.calls.sip_router import TARGET_URI_PATTERN
from signaling.realtime import VOICES

Voice = Literal[VOICES]  # type: ignore[valid-type]


class SessionOverrides(BaseModel):
    """What a call-start request or a live update may change about the session."""

    model_config = ConfigDict(extra="forbid")

    instructions: str | None = Field(None, max_length=16384)
    voice: Voice | None = None
    output_modality: Literal["audio", "text"] | None = None


class StartOverrides(SessionOverrides):
    """Call-start overrides: the session fields plus the mode."""

    mode: Literal["conversational", "transcription"] | None = None


class MessageIn(BaseModel):
    """User text injected into the call."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)


class ReferIn(BaseModel):
    """Where to transfer a phone call: a `tel:` (RFC 3966) or `sip:`/`sips:` URI."""

    model_config = ConfigDict(extra="forbid")

    target_uri: str = Field(pattern=TARGET_URI_PATTERN, examples=["tel:+14155550123"])
