"""TURN credentials from a shared secret (the TURN REST API scheme) and the `rel="ice-server"`
links that carry them (RFC 9725 §4.6)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from service.ice_servers import IceServers, SharedSecret, TurnCredential

SECRET = b"north-wind-shared-secret"
NOW = 1_700_000_000.75


def test_a_derived_username_is_the_expiry_then_the_caller_id() -> None:
    credential = SharedSecret(SECRET, ttl_s=3600).credential(NOW, "caller-1")
    assert credential.username == "1700003600:caller-1"


def test_a_derived_password_is_the_base64_hmac_sha1_of_the_username() -> None:
    credential = SharedSecret(SECRET, ttl_s=3600).credential(NOW, "caller-1")
    expected = hmac.new(SECRET, b"1700003600:caller-1", hashlib.sha1).digest()
    assert credential.password == base64.b64encode(expected).decode()


def test_a_derived_password_matches_one_computed_by_openssl() -> None:
    # printf '%s' '1700003600:caller-1' \
    #   | openssl dgst -sha1 -hmac 'north-wind-shared-secret' -binary | base64
    credential = SharedSecret(SECRET, ttl_s=3600).credential(NOW, "caller-1")
    assert credential.password == "kexTPC5nsYbmcx4RVuSXipUz3gA="


def test_the_expiry_moves_with_the_ttl() -> None:
    credential = SharedSecret(SECRET, ttl_s=60).credential(NOW, "caller-1")
    assert credential.username == "1700000060:caller-1"


def test_a_bound_earlier_than_the_ttl_is_the_expiry_rounded_up() -> None:
    credential = SharedSecret(SECRET, ttl_s=3600).credential(NOW, "caller-1", not_after=NOW + 300)
    assert credential.username == "1700000301:caller-1"


def test_a_bound_later_than_the_ttl_leaves_the_ttl() -> None:
    credential = SharedSecret(SECRET, ttl_s=60).credential(NOW, "caller-1", not_after=NOW + 300)
    assert credential.username == "1700000060:caller-1"


def test_a_bounded_password_is_the_hmac_of_the_bounded_username() -> None:
    credential = SharedSecret(SECRET, ttl_s=3600).credential(NOW, "caller-1", not_after=NOW + 300)
    expected = hmac.new(SECRET, b"1700000301:caller-1", hashlib.sha1).digest()
    assert credential.password == base64.b64encode(expected).decode()


def test_an_expiring_tokens_credential_lasts_until_its_last_call_may_end() -> None:
    servers = IceServers(("turn:turn.example.net",), SharedSecret(SECRET, 86400), 3640.0)
    credential = servers.credential(NOW, "caller-1", token_expires_at=1_700_000_300)
    assert credential is not None
    assert credential.username == "1700003940:caller-1"


def test_a_token_that_does_not_expire_gets_the_ttl() -> None:
    servers = IceServers(("turn:turn.example.net",), SharedSecret(SECRET, 86400), 3640.0)
    credential = servers.credential(NOW, "caller-1", token_expires_at=None)
    assert credential is not None
    assert credential.username == "1700086400:caller-1"


def test_an_expiring_tokens_credential_never_outlasts_the_ttl() -> None:
    servers = IceServers(("turn:turn.example.net",), SharedSecret(SECRET, 600), 3640.0)
    credential = servers.credential(NOW, "caller-1", token_expires_at=1_700_000_300)
    assert credential is not None
    assert credential.username == "1700000600:caller-1"


def test_a_static_credential_is_not_bounded_by_the_token() -> None:
    static = TurnCredential("relay-user", "relay-password")
    servers = IceServers(("turn:turn.example.net",), static, 3640.0)
    assert servers.credential(NOW, "a", token_expires_at=1_700_000_001) == static


def test_a_static_credential_is_the_same_for_every_answer() -> None:
    static = TurnCredential("relay-user", "relay-password")
    servers = IceServers(("turn:turn.example.net",), static)
    assert servers.credential(NOW, "a") == servers.credential(NOW + 10, "b") == static


def test_no_credential_without_a_source() -> None:
    assert IceServers(("turn:turn.example.net",)).credential(NOW, "a") is None


def test_only_turn_links_carry_the_credential() -> None:
    servers = IceServers(("stun:stun.example.net:3478", "turns:turn.example.net?transport=tcp"))
    link = servers.link(TurnCredential("1700003600:caller-1", "kexTPC5nsYbmcx4RVuSXipUz3gA="))
    assert link == (
        '<stun:stun.example.net:3478>; rel="ice-server", '
        '<turns:turn.example.net?transport=tcp>; rel="ice-server"; '
        'username="1700003600:caller-1"; credential="kexTPC5nsYbmcx4RVuSXipUz3gA="; '
        'credential-type="password"'
    )


def test_turn_schemes_are_recognised_in_either_case() -> None:
    link = IceServers(("TURN:turn.example.net",)).link(TurnCredential("u", "p"))
    assert link.endswith('username="u"; credential="p"; credential-type="password"')


def test_without_a_credential_turn_links_are_bare() -> None:
    link = IceServers(("turn:turn.example.net",)).link(None)
    assert link == '<turn:turn.example.net>; rel="ice-server"'


def test_quotes_and_backslashes_are_escaped_in_link_parameters() -> None:
    link = IceServers(("turn:turn.example.net",)).link(TurnCredential('a"b', "c\\d"))
    assert 'username="a\\"b"; credential="c\\\\d"' in link


def test_the_password_is_not_in_a_credentials_repr() -> None:
    assert "relay-password" not in repr(TurnCredential("relay-user", "relay-password"))
    assert "north-wind" not in repr(SharedSecret(SECRET, ttl_s=60))
