"""Simulated phone calls: the stand-in rings a webhook and takes accept, reject and refer.

The real provider receives a SIP INVITE, POSTs a signed `realtime.call.incoming` webhook and
waits for `POST /v1/realtime/calls/{call_id}/accept|reject|refer`
(https://platform.openai.com/docs/guides/realtime-sip). Here a request to `POST /local/sip/ring`
plays the phone network: the stand-in signs the same webhook with the Standard Webhooks scheme
and sends it. Once accepted, the call is an ordinary local call, joined by its sideband; the
caller "speaks" through `POST /local/sip/calls/{call_id}/say`, with text or a WAV file, and what
the caller hears (the assistant's replies) is kept on the phone leg's record. The caller hangs up
with `POST /local/sip/calls/{call_id}/hangup` (a SIP BYE): as the real provider does, the call
ends, its sidebands are closed normally (1000) at once, and from then on a sideband join or a
hang-up of it is answered 404 `call_id_not_found`
(https://community.openai.com/t/sip-caller-hangup-closes-session-websocket-immediately-preventing-event-draining-early-hangup-calls-still-accepted/1368239).

The `/local/...` routes are the stand-in's own (the real provider has no such thing).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal

import httpx
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from standardwebhooks import Webhook
from starlette.datastructures import Headers

from media.audio import SAMPLE_RATE, SAMPLES_PER_FRAME, read_pcm16, samples_frame
from media.local_provider.calls import CallRegistry, LocalCall, new_call_id
from media.local_provider.config import LocalProviderConfig
from media.local_provider.errors import ProviderError, invalid_api_key
from media.local_provider.server_events import JsonObject
from media.local_provider.session import find_session_problem
from signaling.ids import CallId

CALLS_PATH = "/v1/realtime/calls"
LOCAL_SIP_PATH = "/local/sip"

LegState = Literal["ringing", "accepted", "rejected", "referred", "hung_up", "undelivered"]

DEFAULT_REJECT_STATUS = 603  # "603 Decline": the provider's default for /reject
MAX_LEGS = 1000
MAX_HEARD = 50
MAX_WAV_BYTES = 10 * 1024 * 1024
# Silence after the caller's speech, so that the end of the utterance is heard as such.
TRAILING_SILENCE_FRAMES = 50
WEBHOOK_TIMEOUT_S = 10.0
MAX_WEBHOOK_DETAIL_CHARS: Final = 500
TARGET_URI_PREFIXES = ("tel:", "sip:", "sips:")

Authorized = Callable[[Headers], bool]


class RingRequest(BaseModel):
    """`POST /local/sip/ring`: who calls whom, and where the webhook goes.

    `deliver: false` builds and returns the signed webhook without sending it (tests replay,
    tamper with or resend it themselves).
    """

    model_config = ConfigDict(extra="forbid")

    webhook_url: str = Field(pattern=r"^https?://", max_length=2048)
    from_: str = Field("sip:+14155550100@example.com", alias="from", max_length=256)
    to: str = Field("sip:+18005550199@example.com", max_length=256)
    deliver: bool = True


class CallerHears:
    """An event sink on an answered phone call: keeps what the caller hears (reply texts)."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    async def send_event(self, event: JsonObject) -> bool:
        """Keep the final text of each assistant reply."""
        kind = event.get("type")
        if kind == "response.output_audio_transcript.done":
            self._keep(str(event.get("transcript", "")))
        elif kind == "response.output_text.done":
            self._keep(str(event.get("text", "")))
        return True

    def _keep(self, text: str) -> None:
        self.heard.append(text)
        del self.heard[:-MAX_HEARD]

    async def close(self) -> None:
        """The call ended: nothing to close."""


class PhoneLeg:
    """One simulated phone call as the phone network sees it."""

    def __init__(self, call_id: CallId, sip_headers: list[dict[str, str]]) -> None:
        self.call_id = call_id
        self.sip_headers = sip_headers
        self.state: LegState = "ringing"
        self.webhook_status: int | None = None
        self.webhook_detail: str | None = None
        self.reject_status_code: int | None = None
        self.refer_target_uri: str | None = None
        self.accepted_session: JsonObject | None = None
        self.control_requests: list[str] = []
        self.ears = CallerHears()

    def record(self, call: LocalCall | None) -> JsonObject:
        """The leg's record, with the answered call's own record when there is one."""
        return {
            "call_id": self.call_id,
            "state": self.state,
            "sip_headers": self.sip_headers,
            "webhook_status": self.webhook_status,
            "webhook_detail": self.webhook_detail,
            "reject_status_code": self.reject_status_code,
            "refer_target_uri": self.refer_target_uri,
            "accepted_session": self.accepted_session,
            "control_requests": list(self.control_requests),
            "heard": list(self.ears.heard),
            "call": call.debug_record() if call is not None else None,
        }


class PhoneExchange:
    """The stand-in's phone network: rings, and answers the call-control requests."""

    def __init__(self, config: LocalProviderConfig, registry: CallRegistry) -> None:
        self._config = config
        self._registry = registry
        self._legs: OrderedDict[str, PhoneLeg] = OrderedDict()

    def leg(self, call_id: str) -> PhoneLeg:
        """The phone leg with this id; `ProviderError` 404 when there is none."""
        leg = self._legs.get(call_id)
        if leg is None:
            raise ProviderError(
                404, f"Call {call_id!r} not found.", code="call_not_found", param="call_id"
            )
        return leg

    def record(self, call_id: str) -> JsonObject:
        """The leg's record."""
        return self.leg(call_id).record(self._registry.get(call_id))

    def signed_webhook(self, leg: PhoneLeg) -> tuple[dict[str, str], str]:
        """The `realtime.call.incoming` delivery for `leg`: headers and body, signed now."""
        if not self._config.webhook_secret:
            raise ProviderError(
                400, "The stand-in has no webhook secret configured.", code="no_webhook_secret"
            )
        now = datetime.now(UTC)
        event = {
            "object": "event",
            "id": f"evt_{secrets.token_hex(12)}",
            "type": "realtime.call.incoming",
            "created_at": int(now.timestamp()),
            "data": {"call_id": leg.call_id, "sip_headers": leg.sip_headers},
        }
        body = json.dumps(event)
        webhook_id = f"wh_{secrets.token_hex(12)}"
        signature = Webhook(self._config.webhook_secret).sign(webhook_id, now, body)
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }
        return headers, body

    async def ring(self, request: RingRequest) -> tuple[PhoneLeg, dict[str, str], str]:
        """Announce a new phone call; send its webhook unless `request.deliver` is false."""
        sip_headers = [
            {"name": "From", "value": request.from_},
            {"name": "To", "value": request.to},
            {"name": "Call-ID", "value": f"{secrets.token_hex(8)}@sip.local"},
        ]
        leg = PhoneLeg(new_call_id(), sip_headers)
        self._legs[leg.call_id] = leg
        while len(self._legs) > MAX_LEGS:
            self._legs.popitem(last=False)
        headers, body = self.signed_webhook(leg)
        if request.deliver:
            try:
                async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S) as client:
                    response = await client.post(request.webhook_url, content=body, headers=headers)
                leg.webhook_status = response.status_code
                if not response.is_success:
                    leg.webhook_detail = _problem_detail(response)
            except httpx.HTTPError:
                leg.state = "undelivered"
        return leg, headers, body

    async def accept(self, call_id: str, session: object) -> None:
        """Answer: the call becomes an ordinary local call with `session`."""
        leg = self._ringing(call_id, "accept")
        problem = find_session_problem(session)
        if problem is not None:
            raise ProviderError(400, problem.message, code=problem.code, param=problem.param)
        assert isinstance(session, dict)
        call = self._registry.create(session, call_id=leg.call_id)
        leg.state, leg.accepted_session = "accepted", session
        await call.subscribe(leg.ears)

    def reject(self, call_id: str, status_code: int) -> None:
        """Refuse the ringing call with a SIP status."""
        leg = self._ringing(call_id, "reject")
        leg.state, leg.reject_status_code = "rejected", status_code

    async def refer(self, call_id: str, target_uri: str) -> None:
        """Transfer the call, ringing or answered; an answered call's session ends."""
        leg = self.leg(call_id)
        leg.control_requests.append("refer")
        if leg.state not in ("ringing", "accepted"):
            raise _not_live(call_id, leg.state)
        leg.state, leg.refer_target_uri = "referred", target_uri
        call = self._registry.active(call_id)
        if call is not None:
            await call.end()

    async def caller_hangs_up(self, call_id: str) -> None:
        """The caller hangs up an answered call: it ends, its sidebands are closed."""
        leg = self.leg(call_id)
        if leg.state != "accepted":
            raise _not_live(call_id, leg.state, "answered")
        leg.state = "hung_up"
        call = self._registry.active(call_id)
        if call is not None:
            await call.end()

    async def say_text(self, call_id: str, text: str) -> None:
        """The caller says `text` (as if recognised from their voice)."""
        await self._answered(call_id).user_spoke(text)

    async def say_audio(self, call_id: str, audio: bytes) -> int:
        """The caller speaks `audio` (WAV or any format FFmpeg decodes); returns its frames.

        Raises ValueError when the bytes are not decodable audio.
        """
        call = self._answered(call_id)
        try:
            # Decoding a long file takes a while; the event loop serves other calls meanwhile.
            pcm = await asyncio.to_thread(read_pcm16, audio, SAMPLE_RATE)
        except Exception as exc:
            raise ValueError(f"not decodable audio: {type(exc).__name__}") from None
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
        samples = np.concatenate(
            [
                samples,
                np.zeros(
                    -samples.size % SAMPLES_PER_FRAME + TRAILING_SILENCE_FRAMES * SAMPLES_PER_FRAME,
                    dtype=np.int16,
                ),
            ]
        )
        frames = 0
        for start in range(0, samples.size, SAMPLES_PER_FRAME):
            call.on_user_audio(samples_frame(samples[start : start + SAMPLES_PER_FRAME], start))
            frames += 1
        return frames

    def _ringing(self, call_id: str, action: str) -> PhoneLeg:
        leg = self.leg(call_id)
        leg.control_requests.append(action)
        if leg.state != "ringing":
            raise _not_live(call_id, leg.state)
        return leg

    def _answered(self, call_id: str) -> LocalCall:
        self.leg(call_id)
        call = self._registry.active(call_id)
        if call is None:
            raise ProviderError(409, f"Call {call_id!r} is not answered.", code="call_not_answered")
        return call


def _not_live(call_id: str, state: str, wanted: str = "ringing") -> ProviderError:
    return ProviderError(
        400, f"Call {call_id!r} is {state}, not {wanted}.", code="invalid_call_state"
    )


async def _json_object(request: Request, *, required: bool) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ProviderError(400, "A JSON body is required.", code="invalid_json")
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProviderError(400, "The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ProviderError(400, "The body must be a JSON object.", code="invalid_type")
    return body


def register_phone_routes(app: FastAPI, exchange: PhoneExchange, authorized: Authorized) -> None:
    """Add the SIP call-control routes (real shapes) and the `/local/sip` simulation routes."""

    def require_key(request: Request) -> None:
        if not authorized(request.headers):
            raise invalid_api_key()

    @app.post(CALLS_PATH + "/{call_id}/accept")
    async def accept(call_id: str, request: Request) -> Response:
        require_key(request)
        await exchange.accept(call_id, await _json_object(request, required=True))
        return Response(status_code=200)

    @app.post(CALLS_PATH + "/{call_id}/reject")
    async def reject(call_id: str, request: Request) -> Response:
        require_key(request)
        body = await _json_object(request, required=False)
        status = body.get("status_code", DEFAULT_REJECT_STATUS)
        if not isinstance(status, int) or not 400 <= status <= 699:
            raise ProviderError(
                400, "status_code must be a SIP final status.", code="invalid_value"
            )
        exchange.reject(call_id, status)
        return Response(status_code=200)

    @app.post(CALLS_PATH + "/{call_id}/refer")
    async def refer(call_id: str, request: Request) -> Response:
        require_key(request)
        target = (await _json_object(request, required=True)).get("target_uri")
        if not isinstance(target, str) or not target.startswith(TARGET_URI_PREFIXES):
            raise ProviderError(
                400,
                "target_uri must be a tel: or sip: URI.",
                code="invalid_value",
                param="target_uri",
            )
        await exchange.refer(call_id, target)
        return Response(status_code=200)

    @app.post(LOCAL_SIP_PATH + "/ring", status_code=201)
    async def ring(request: Request) -> JSONResponse:
        require_key(request)
        try:
            ring_request = RingRequest.model_validate(await _json_object(request, required=True))
        except ValidationError as exc:
            raise ProviderError(400, str(exc.errors()[0]["msg"]), code="invalid_value") from None
        leg, headers, body = await exchange.ring(ring_request)
        answer: JsonObject = leg.record(None)
        if not ring_request.deliver:
            answer["webhook"] = {"headers": headers, "body": body}
        return JSONResponse(answer, status_code=201)

    @app.get(LOCAL_SIP_PATH + "/calls/{call_id}")
    async def leg_record(call_id: str, request: Request) -> JsonObject:
        require_key(request)
        return exchange.record(call_id)

    @app.post(LOCAL_SIP_PATH + "/calls/{call_id}/hangup")
    async def caller_hangup(call_id: str, request: Request) -> JsonObject:
        require_key(request)
        await exchange.caller_hangs_up(call_id)
        return exchange.record(call_id)

    @app.post(LOCAL_SIP_PATH + "/calls/{call_id}/say", status_code=202)
    async def say(call_id: str, request: Request) -> JsonObject:
        require_key(request)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "application/json":
            text = (await _json_object(request, required=True)).get("text")
            if not isinstance(text, str) or not text.strip():
                raise ProviderError(400, "text must be a non-empty string.", code="invalid")
            await exchange.say_text(call_id, text)
            return {"said": text}
        if not media_type.startswith("audio/"):
            raise ProviderError(
                415, "Send application/json {text} or an audio file.", code="unsupported"
            )
        audio = await request.body()
        if len(audio) > MAX_WAV_BYTES:
            raise ProviderError(413, "The audio is too large.", code="too_large")
        try:
            frames = await exchange.say_audio(call_id, audio)
        except ValueError as exc:
            raise ProviderError(400, str(exc), code="invalid_audio") from None
        return {"frames": frames}


def _problem_detail(response: httpx.Response) -> str | None:
    """The `detail` of a refusing webhook answer in problem+json (RFC 9457 §3.1.4), cut to
    `MAX_WEBHOOK_DETAIL_CHARS`; None for any other body."""
    try:
        body = response.json()
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail[:MAX_WEBHOOK_DETAIL_CHARS] if isinstance(detail, str) else None
