"""Control operations on a call, executed by the instance that owns it.

The API calls `execute` for a local call; for a call owned by another instance the same
operation travels through the `CallDirectory` and the owner runs `execute` there. One code path,
so a forwarded request behaves exactly like a local one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from service.api.models import SessionOverrides
from service.auth import Principal, may_control
from service.calls.record import Call
from signaling.provider import ProviderError

if TYPE_CHECKING:
    from service.calls.manager import CallManager

Reply = tuple[int, dict[str, Any]]


def problem(status: int, detail: str, kind: str) -> Reply:
    """A problem+json body as a reply."""
    titles = {
        404: "Not Found",
        409: "Conflict",
        422: "Unprocessable Content",
        502: "Bad Gateway",
    }
    return status, {
        "type": f"https://callbridge.dev/problems/{kind}",
        "title": titles.get(status, "Error"),
        "status": status,
        "detail": detail,
    }


async def execute(
    manager: CallManager, op: str, call_id: str, body: dict[str, Any], principal: Principal
) -> Reply:
    """Run `op` (`get`, `hangup`, `message`, `session`, `refer`) on a call this instance owns."""
    call = manager.get(call_id)
    # A call someone else started is reported as unknown: its existence is not their business.
    if call is None or not may_control(principal, call.started_by):
        return problem(404, "no such call", "unknown-call")
    if op == "get":
        return 200, call.to_json()
    if op == "hangup":
        await manager.hangup(call.call_id)
        return 200, call.to_json(full=False)
    session = manager.session(call_id)
    if session is None:
        return problem(409, "the call has ended", "call-ended")
    if op == "message":
        await session.inject_text(str(body["text"]))
        return 202, {"status": "sent"}
    if op == "session":
        try:
            overrides = SessionOverrides.model_validate(body)
        except ValidationError:
            return problem(422, "invalid session update", "invalid-request")
        changes = overrides.model_dump(exclude_none=True)
        await session.update_session(replace(session.call.config, **changes))
        return 200, session.call.to_json(full=False)["session"]
    if op == "refer":
        return await _refer(manager, session.call, str(body["target_uri"]))
    return problem(422, f"unknown control operation {op!r}", "invalid-request")


async def _refer(manager: CallManager, call: Call, target_uri: str) -> Reply:
    # The call exists and is live but is not a phone call: a conflict with its state, not a
    # bad request (the same body is fine for a phone call).
    if call.kind != "sip":
        return problem(409, "only a phone call (SIP) can be transferred", "not-a-phone-call")
    try:
        await manager.refer(call.call_id, target_uri)
    except ProviderError as exc:
        reply = problem(502, f"the provider refused the transfer: {exc.message}", "provider-error")
        reply[1]["provider_status"] = exc.status
        return reply
    return 202, {"status": "referred", "target_uri": target_uri}
