"""Request bodies the API accepts (pydantic, strict shapes), and the JSON it answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from service.calls.record import CallKind, CallStateName, HandoffStateName
from service.calls.sip_router import TARGET_URI_PATTERN
from signaling.realtime import VOICES, EndReason, OutputModality, Role, SessionMode

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


# What the API answers. These models only document the JSON the routes write themselves (in
# the OpenAPI document, through `answers`); no answer is built or checked through them, and they
# are built only when the document is first asked for.


class _Answer(BaseModel):
    model_config = ConfigDict(defer_build=True)


def _no_default(schema: dict[str, Any]) -> None:
    # An answer leaves the member out; no default stands in for it.
    schema.pop("default", None)


def _optional(description: str) -> Any:
    """A member some answers leave out. Typed `X | SkipJsonSchema[None]`, it is never null when
    present; typed `X | None`, it may be."""
    return Field(None, description=description, json_schema_extra=_no_default)


class FieldError(_Answer):
    """One reason a request body does not have the expected shape."""

    loc: list[str] = Field(description="Where in the body: member names and list indices.")
    msg: str


class ProblemDetails(_Answer):
    """An error answer, `application/problem+json` (RFC 9457 §3,
    https://www.rfc-editor.org/rfc/rfc9457#section-3). Extension members name what failed."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    type: str = Field(
        description="`https://callbridge.dev/problems/{kind}`, or `about:blank` when the status "
        "says it all.",
        examples=["https://callbridge.dev/problems/unknown-call"],
    )
    title: str = Field(description="The status's reason phrase (RFC 9110 §15).")
    status: int = Field(ge=400, le=599, description="The answer's HTTP status.")
    detail: str
    instance: str | SkipJsonSchema[None] = _optional("The request's path.")
    errors: list[FieldError] | SkipJsonSchema[None] = _optional(
        "What is wrong with the request body (kind `invalid-request`)."
    )
    provider_status: int | None = _optional(
        "The provider's HTTP status, when it refused (kinds `offer-refused`, `provider-error`)."
    )
    provider_code: str | None = _optional("The provider's error code, when it gave one.")


class Health(_Answer):
    """A health+json status
    (https://datatracker.ietf.org/doc/html/draft-inadarei-api-health-check-06)."""

    status: Literal["pass", "fail", "warn"]


class HealthCheck(_Answer):
    """One check of a readiness answer."""

    status: Literal["pass", "fail", "warn"]
    componentType: str | SkipJsonSchema[None] = _optional("The queue's kind.")
    observedValue: int | SkipJsonSchema[None] = _optional("Calls that can still start.")
    observedUnit: str | SkipJsonSchema[None] = _optional("`calls`.")
    affectsReadiness: bool | SkipJsonSchema[None] = _optional(
        "False for a check that only warns (the provider's reachability)."
    )
    output: str | SkipJsonSchema[None] = _optional(
        "Why a failing check fails (the queue's: Redis unreachable, or refusing our credentials)."
    )


class Readiness(Health):
    """Readiness: `pass` when the queue answers, a call can start and the instance is not
    draining; each check by name (`queue:reachable`, `calls:capacity`, `instance:draining`,
    `provider:reachable`)."""

    checks: dict[str, list[HealthCheck]]


class SessionSettings(_Answer):
    """A call's realtime session settings."""

    mode: SessionMode
    instructions: str
    voice: str
    output_modality: OutputModality
    model: str


class EndDetail(_Answer):
    """What the provider said when the call ended."""

    code: str | None
    message: str | None


class CallLimits(_Answer):
    """The call's time limits."""

    max_duration_s: float
    idle_timeout_s: float
    ends_by: datetime = Field(description="When the maximum duration runs out.")


class CallSummary(_Answer):
    """A call's record without the parts that grow with the call (`GET /v1/calls`, hang-up).

    `session` holds the settings in force (confirmed by the provider), `session_requested` those
    last asked for; they differ while an update is in flight.
    """

    id: str
    state: CallStateName
    owner: str = Field(description="The instance that runs the call.")
    created_at: datetime
    answered_at: datetime | None
    sideband_joined_at: datetime | None
    ended_at: datetime | None
    end_reason: EndReason | None = Field(
        description="Why the call ended (the README's table of end reasons)."
    )
    end_detail: EndDetail | None
    provider_session_id: str | None
    session: SessionSettings
    session_requested: SessionSettings
    limits: CallLimits
    sideband_reconnects: int
    kind: CallKind
    sip_headers: dict[str, str] | None = Field(
        description="`From`, `To` and `Call-ID` of a phone call; null for a WebRTC call."
    )
    transferred_to: str | None


class TranscriptLine(_Answer):
    """One conversation item's text, in conversation order; `final` once complete."""

    item_id: str
    role: Role
    text: str
    final: bool


class Handoff(_Answer):
    """One `background_agent` handoff. `expired`: the call stopped waiting for it and failed it;
    `late_output` is a result that came after that, which the model never saw."""

    handoff_id: str
    tool_call_id: str
    request: str
    steering: bool
    state: HandoffStateName
    output: str | None
    error: str | None
    progress: list[str]
    delivered_to_model: bool
    expired: bool
    late_output: str | None
    queued_at: datetime
    finished_at: datetime | None


class ReportedError(_Answer):
    """An error the provider reported that the call survived."""

    code: str | None
    message: str
    at: float = Field(description="When, in Unix seconds.")


class CallRecord(CallSummary):
    """A call's whole record: the summary plus transcript, handoffs, the last 50 errors and the
    per-call caps reached (by name, with their limit)."""

    transcript: list[TranscriptLine]
    handoffs: list[Handoff]
    errors: list[ReportedError]
    limits_reached: dict[str, int]


class CallsPage(_Answer):
    """A page of live calls in call-id order."""

    calls: list[CallSummary]
    next: str | None = Field(description="The `after` of the following page; null on the last.")


class MessageSent(_Answer):
    """The text went to the call."""

    status: Literal["sent"]


class SessionChange(_Answer):
    """A session update asked of the provider: `session` is still the confirmed settings."""

    session: SessionSettings
    session_requested: SessionSettings


class TransferRequested(_Answer):
    """The provider took the transfer (SIP REFER)."""

    status: Literal["referred"]
    target_uri: str


class CallToken(_Answer):
    """A call token for a browser."""

    token: str
    expires_at: int = Field(description="Unix seconds.")


class WebhookHandled(_Answer):
    """A verified webhook: `ringing` (an incoming call, `call_id`, being decided) or `ignored`."""

    status: Literal["ringing", "ignored"]
    call_id: str | SkipJsonSchema[None] = _optional("The incoming call (when `ringing`).")


ANSWER_MODELS: tuple[type[BaseModel], ...] = (
    ProblemDetails,
    Health,
    Readiness,
    CallsPage,
    CallSummary,
    CallRecord,
    MessageSent,
    SessionChange,
    TransferRequested,
    CallToken,
    WebhookHandled,
)
"""Every answer's model; those they hold come with them."""
