"""What an instance taking a call over restores from the record its owner saved."""

from __future__ import annotations

import json

from service.calls.record import Call
from service.calls.store import record_from_json, record_to_json
from signaling.ids import CallId
from signaling.realtime import SessionConfig


def _phone_call() -> Call:
    return Call(
        call_id=CallId("rtc_abc"),
        config=SessionConfig(),
        owner="a",
        state="active",
        kind="sip",
        sip_headers={"From": "sip:+15550100@example.com", "To": "sip:+15550199@example.com"},
        transferred_to="tel:+15550123",
    )


def test_a_phone_call_taken_over_is_still_a_phone_call_with_its_sip_headers() -> None:
    call = _phone_call()
    restored = record_from_json(json.loads(json.dumps(record_to_json(call))), owner="b")
    assert (restored.kind, restored.sip_headers, restored.transferred_to) == (
        call.kind,
        call.sip_headers,
        call.transferred_to,
    )
    assert restored.owner == "b"


def test_a_record_saved_without_a_kind_restores_as_a_webrtc_call() -> None:
    saved = record_to_json(_phone_call())
    for name in ("kind", "sip_headers", "transferred_to"):
        del saved[name]
    restored = record_from_json(saved, owner="b")
    assert (restored.kind, restored.sip_headers, restored.transferred_to) == ("webrtc", {}, None)
