"""What to do with a ringing phone call: accept (with session overrides), reject, or refer.

A router is the user's code, named like a handoff handler: `module:function` (sync or async,
called with an `IncomingCall`) or an http(s) URL (POSTed the call as JSON). Either answers one
JSON-shaped decision:

    {"action": "accept", "session": {"instructions": "...", "voice": "...", ...}}
    {"action": "reject", "status_code": 486}
    {"action": "refer", "target_uri": "tel:+14155550123"}

A router that fails, answers nothing usable or is too slow raises `RouterError`; the caller
decides what that means for the call.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from service.dotted_names import cancelled_from_outside, described, load_callable
from service.outbound_http import EndpointClient, endpoint_url, refusal
from signaling.ids import CallId
from signaling.realtime import VOICES

Voice = Literal[VOICES]  # type: ignore[valid-type]

# SIP headers kept on the call record (RFC 3261 §20): who called, whom, and the dialog's id.
KEPT_SIP_HEADERS = ("From", "To", "Call-ID")
MAX_SIP_HEADER_CHARS = 512
# A transfer target: a `tel:` number (RFC 3966) or a `sip:`/`sips:` URI (RFC 3261 §19.1).
TARGET_URI_PATTERN = r"^(tel:\+?[0-9A-Za-z*#().;=\-]{1,64}|sips?:[!-~]{1,250})$"


class RouterError(Exception):
    """The router failed or answered something that is not a decision."""


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A ringing phone call, as the `realtime.call.incoming` webhook described it."""

    call_id: CallId
    sip_headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What an HTTP router receives."""
        return {"call_id": self.call_id, "sip_headers": dict(self.sip_headers)}


def kept_sip_headers(raw: object) -> dict[str, str]:
    """From, To and Call-ID from the webhook's `sip_headers` list of `{name, value}` objects.

    Names match case-insensitively (RFC 3261 §7.3.1); values are cut to a bounded length;
    anything else in the list is ignored.
    """
    kept: dict[str, str] = {}
    if not isinstance(raw, list):
        return kept
    wanted = {name.lower(): name for name in KEPT_SIP_HEADERS}
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        name, value = entry.get("name"), entry.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        canonical = wanted.get(name.strip().lower())
        if canonical is not None and canonical not in kept:
            kept[canonical] = value[:MAX_SIP_HEADER_CHARS]
    return kept


class AcceptOverrides(BaseModel):
    """Session fields a router may change for one phone call."""

    model_config = ConfigDict(extra="forbid")

    instructions: str | None = Field(None, max_length=16384)
    voice: Voice | None = None
    output_modality: Literal["audio", "text"] | None = None
    mode: Literal["conversational", "transcription"] | None = None


class Accept(BaseModel):
    """Answer the call with the server's session defaults and these overrides."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["accept"] = "accept"
    session: AcceptOverrides = Field(default_factory=AcceptOverrides)


class Reject(BaseModel):
    """Refuse the call with a SIP final status (RFC 3261 §21.4-21.6), e.g. 486 Busy Here."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["reject"] = "reject"
    status_code: int = Field(603, ge=400, le=699)


class Refer(BaseModel):
    """Send the call elsewhere (SIP REFER) without answering it here."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["refer"] = "refer"
    target_uri: str = Field(pattern=TARGET_URI_PATTERN)


Decision = Annotated[Accept | Reject | Refer, Field(discriminator="action")]
_DECISION: TypeAdapter[Accept | Reject | Refer] = TypeAdapter(Decision)

Router = Callable[[IncomingCall], Awaitable[Accept | Reject | Refer]]


def parse_decision(raw: object) -> Accept | Reject | Refer:
    """A router's answer as a decision; `RouterError` when it is not one."""
    if isinstance(raw, Accept | Reject | Refer):
        return raw
    try:
        return _DECISION.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RouterError(f"router answered no valid decision ({where}: {first['msg']})") from None


async def accept_all(call: IncomingCall) -> Accept | Reject | Refer:
    """The default router: every call is accepted with the session defaults."""
    return Accept()


def _from_callable(func: Callable[[IncomingCall], Any]) -> Router:
    async def route(call: IncomingCall) -> Accept | Reject | Refer:
        try:
            result = func(call)
            if inspect.isawaitable(result):
                result = await result
        except BaseException as exc:
            if cancelled_from_outside(exc):
                raise
            # `SystemExit` or a `CancelledError` of its own too: the router failed, and the
            # service goes on.
            raise RouterError(f"router raised {described(exc)}") from None
        return parse_decision(result)

    return route


class _UrlRouter:
    """A router reached by POSTing the incoming call as JSON to `url`; answers a decision."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.endpoint = EndpointClient()

    async def __call__(self, call: IncomingCall) -> Accept | Reject | Refer:
        # Imported only where an HTTP router is configured: the service never needs httpx.
        import httpx

        try:
            response = await self.endpoint.get().post(self.url, json=call.to_json())
        except httpx.HTTPError as exc:
            raise RouterError(f"router unreachable: {type(exc).__name__}") from None
        refused = refusal(response.status_code)
        if refused is not None:
            raise RouterError(f"router {refused}")
        try:
            body = response.json()
        except (ValueError, RecursionError):
            raise RouterError("router answered no JSON") from None
        return parse_decision(body)

    async def aclose(self) -> None:
        """Close the connections kept to the router."""
        await self.endpoint.aclose()


def load_router(spec: str | None) -> Router:
    """Resolve a router spec: unset (accept everything), `module:function` or an http(s) URL.

    Raises ValueError when the spec names nothing callable, or is a URL that is not http(s)
    with a host.
    """
    if not spec:
        return accept_all
    url = endpoint_url(spec)
    if url is not None:
        return _UrlRouter(url)
    return _from_callable(load_callable(spec, "SIP router (or a URL)"))
