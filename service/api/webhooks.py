"""`POST /v1/provider/webhooks`: the provider's webhooks, the incoming phone call above all.

Answers within the time it takes to check a signature: routing and answering the call happen
in the background (`IncomingCalls`). Statuses:

- 200 `{"status": "ringing"}`: a verified `realtime.call.incoming`; it is being decided.
- 200 `{"status": "ignored"}`: a verified event of another type.
- 401: no or bad signature headers, a wrong signature, or a timestamp more than 5 minutes off.
- 400: a verified delivery whose `webhook-id` was seen before (a replay). The call it announced
  has been decided already; the repeat changes nothing.
- 400: a verified delivery that is not a JSON object or names no valid call id.
- 404: webhooks are not enabled (`CALLBRIDGE_WEBHOOK_SECRET` unset).
- 503 with `Retry-After`: the shared replay guard (Redis) is unreachable; the provider retries.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.api.bodies import read_limited
from service.api.models import WebhookHandled
from service.api.openapi import answer, answers
from service.api.problems import Problem
from service.calls.incoming import IncomingCalls
from service.calls.sip_router import IncomingCall, kept_sip_headers
from service.metrics import WEBHOOKS
from service.webhook_verification import (
    ReplayGuard,
    ReplayGuardUnavailable,
    WebhookMalformed,
    WebhookReplayed,
    WebhookUnverified,
    WebhookVerifier,
)
from signaling.ids import CallId, is_valid_call_id

router = APIRouter(prefix="/v1/provider", tags=["phone calls"])

CALL_INCOMING = "realtime.call.incoming"


def _incoming_call(event: dict[str, Any]) -> IncomingCall:
    data = event.get("data")
    if not isinstance(data, dict):
        data = {}
    call_id = data.get("call_id")
    if not isinstance(call_id, str) or not is_valid_call_id(call_id):
        WEBHOOKS.labels(outcome="malformed").inc()
        raise Problem(400, "the event names no valid data.call_id", kind="bad-webhook")
    return IncomingCall(CallId(call_id), kept_sip_headers(data.get("sip_headers")))


_HANDLED = {
    200: answer(
        "Verified: `ringing` (an incoming call being decided) or `ignored`.", WebhookHandled
    )
}


@router.post(
    "/webhooks",
    operation_id="providerWebhook",
    responses=answers(400, 401, 404, 413, 415, 503, ok=_HANDLED),
)
async def provider_webhook(request: Request) -> JSONResponse:
    """Verify a provider webhook and act on it.

    Its authentication is the delivery's Standard Webhooks signature (the `webhook-id`,
    `webhook-timestamp` and `webhook-signature` headers, made with `CALLBRIDGE_WEBHOOK_SECRET`;
    https://www.standardwebhooks.com/), not a bearer token: a missing, wrong or stale one is
    401. 400 for a replayed or malformed delivery, 404 when webhooks are not enabled, 503 when
    replays cannot be checked.
    """
    verifier: WebhookVerifier | None = request.app.state.webhook_verifier
    if verifier is None:
        raise Problem(
            404, "webhooks are not enabled: set CALLBRIDGE_WEBHOOK_SECRET", kind="no-webhooks"
        )
    body = await read_limited(request, request.app.state.settings.max_json_bytes)
    seen: ReplayGuard = request.app.state.webhook_replays
    try:
        event = (await verifier.verify(body, request.headers, seen)).event
    except WebhookUnverified as exc:
        WEBHOOKS.labels(outcome="bad_signature").inc()
        raise Problem(401, f"webhook not verified: {exc}", kind="bad-webhook-signature") from None
    except WebhookReplayed as exc:
        WEBHOOKS.labels(outcome="replayed").inc()
        raise Problem(400, str(exc), kind="webhook-replayed") from None
    except WebhookMalformed as exc:
        WEBHOOKS.labels(outcome="malformed").inc()
        raise Problem(400, str(exc), kind="bad-webhook") from None
    except ReplayGuardUnavailable as exc:
        raise Problem(
            503,
            f"cannot check for a replay: {exc}",
            kind="unavailable",
            headers={"Retry-After": "1"},
        ) from None
    if event.get("type") != CALL_INCOMING:
        WEBHOOKS.labels(outcome="ignored").inc()
        return JSONResponse({"status": "ignored"})
    call = _incoming_call(event)
    incoming: IncomingCalls = request.app.state.incoming_calls
    incoming.ring(call)
    WEBHOOKS.labels(outcome="handled").inc()
    return JSONResponse({"status": "ringing", "call_id": call.call_id})
