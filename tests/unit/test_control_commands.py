"""Control commands on their way between instances."""

from __future__ import annotations

from service.auth import Principal
from service.calls.control import HangUp, command_from_json, command_to_json

CALLER = Principal("call", "nonce-1", expires_at=1_700_000_300)


def test_a_forwarded_principal_holds_only_what_controlling_a_call_needs() -> None:
    # An instance of an earlier release refuses a principal with a field it does not know.
    assert command_to_json(HangUp("rtc_1", CALLER))["principal"] == {
        "kind": "call",
        "token_id": "nonce-1",
    }


def test_a_forwarded_command_controls_the_calls_of_the_same_token() -> None:
    parsed = command_from_json("hangup", command_to_json(HangUp("rtc_1", CALLER)))
    assert (parsed.principal.kind, parsed.principal.token_id) == ("call", "nonce-1")
