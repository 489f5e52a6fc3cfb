"""SIP routing: the headers kept from the webhook, and what counts as a router's decision."""

from __future__ import annotations

import asyncio

import pytest

from service.calls.sip_router import (
    MAX_SIP_HEADER_CHARS,
    Accept,
    IncomingCall,
    Refer,
    Reject,
    RouterError,
    kept_sip_headers,
    load_router,
    parse_decision,
)
from signaling.ids import CallId


def test_from_to_and_call_id_are_kept_whatever_their_case() -> None:
    raw = [
        {"name": "from", "value": "<sip:+1415@example.com>"},
        {"name": "TO", "value": "<sip:+1800@example.com>"},
        {"name": "Call-Id", "value": "abc@host"},
        {"name": "Via", "value": "SIP/2.0/UDP host"},
    ]
    assert kept_sip_headers(raw) == {
        "From": "<sip:+1415@example.com>",
        "To": "<sip:+1800@example.com>",
        "Call-ID": "abc@host",
    }


def test_malformed_header_entries_are_skipped() -> None:
    raw = [{"name": "From"}, "To: x", {"name": 1, "value": "x"}, {"name": "To", "value": "y"}]
    assert kept_sip_headers(raw) == {"To": "y"}
    assert kept_sip_headers({"From": "x"}) == {}


def test_long_header_values_are_cut() -> None:
    kept = kept_sip_headers([{"name": "From", "value": "x" * 10_000}])
    assert len(kept["From"]) == MAX_SIP_HEADER_CHARS


def test_an_accept_may_carry_session_overrides() -> None:
    decision = parse_decision({"action": "accept", "session": {"voice": "cedar"}})
    assert isinstance(decision, Accept)
    assert decision.session.voice == "cedar"


def test_a_reject_defaults_to_603_decline() -> None:
    assert parse_decision({"action": "reject"}) == Reject(status_code=603)


def test_a_reject_status_must_be_a_sip_final_status() -> None:
    with pytest.raises(RouterError):
        parse_decision({"action": "reject", "status_code": 200})


def test_a_refer_target_must_be_a_tel_or_sip_uri() -> None:
    assert parse_decision({"action": "refer", "target_uri": "sip:desk@example.com"}) == Refer(
        target_uri="sip:desk@example.com"
    )
    with pytest.raises(RouterError):
        parse_decision({"action": "refer", "target_uri": "https://example.com"})


def test_an_unknown_action_is_no_decision() -> None:
    with pytest.raises(RouterError):
        parse_decision({"action": "hold"})


def test_no_router_accepts_every_call() -> None:
    route = load_router(None)

    async def decide() -> object:
        return await route(IncomingCall(CallId("rtc_1")))

    assert asyncio.run(decide()) == Accept()


def test_a_router_spec_must_name_a_function_or_url() -> None:
    with pytest.raises(ValueError, match="module:function"):
        load_router("not-a-spec")
