"""The provider's host name as last resolved: fresh for its TTL, standing in for a failed
look-up for longer, reordered by what answered, forgotten when nothing did."""

from __future__ import annotations

from signaling.addresses import Resolution, connect_address, is_host_name
from signaling.realtime.sideband import sideband_addresses


def test_a_resolution_is_fresh_until_its_ttl_has_passed() -> None:
    resolution = Resolution(ttl_s=10.0)
    resolution.remember(("192.0.2.1", "192.0.2.2"), now=100.0)
    assert resolution.fresh(now=109.9) == ("192.0.2.1", "192.0.2.2")
    assert resolution.fresh(now=110.0) is None


def test_a_resolution_past_its_ttl_stands_in_until_its_stale_limit() -> None:
    resolution = Resolution(ttl_s=10.0, max_stale_s=60.0)
    resolution.remember(("192.0.2.1",), now=100.0)
    assert resolution.stale(now=159.9) == ("192.0.2.1",)
    assert resolution.stale(now=160.0) is None


def test_after_a_failed_look_up_the_stale_addresses_stand_in_until_the_recheck() -> None:
    resolution = Resolution(ttl_s=10.0, max_stale_s=3600.0, recheck_s=30.0)
    resolution.remember(("192.0.2.1",), now=0.0)
    assert resolution.fresh(now=50.0) is None
    resolution.failed(now=50.0)
    assert resolution.fresh(now=79.9) == ("192.0.2.1",)
    assert resolution.fresh(now=80.0) is None


def test_the_address_that_answered_is_tried_first() -> None:
    resolution = Resolution()
    resolution.remember(("192.0.2.1", "192.0.2.2", "192.0.2.3"), now=0.0)
    resolution.prefer("192.0.2.3")
    assert resolution.fresh(now=0.0) == ("192.0.2.3", "192.0.2.1", "192.0.2.2")


def test_a_forgotten_resolution_is_neither_fresh_nor_stale() -> None:
    resolution = Resolution()
    resolution.remember(("192.0.2.1",), now=0.0)
    resolution.forget()
    assert (resolution.fresh(now=0.0), resolution.stale(now=0.0)) == (None, None)


def test_nothing_resolved_is_neither_fresh_nor_stale() -> None:
    resolution = Resolution()
    resolution.remember((), now=0.0)
    assert (resolution.fresh(now=0.0), resolution.stale(now=0.0)) == (None, None)


def test_an_ipv6_address_keeps_its_scope() -> None:
    assert connect_address(("fe80::1", 443, 0, 2)) == "fe80::1%2"
    assert connect_address(("::1", 443, 0, 0)) == "::1"
    assert connect_address(("192.0.2.1", 443)) == "192.0.2.1"


def test_ip_literals_are_not_host_names() -> None:
    assert [is_host_name(h) for h in ("127.0.0.1", "::1", "[::1]", "api.openai.com")] == [
        False,
        False,
        False,
        True,
    ]


def test_the_sideband_resolves_only_a_host_name_it_reaches_directly() -> None:
    named = sideband_addresses("https://api.openai.com", None)
    assert named is not None
    assert (named.host, named.port) == ("api.openai.com", 443)
    assert sideband_addresses("http://127.0.0.1:8080", None) is None
    assert sideband_addresses("https://api.openai.com", "http://proxy.example:3128") is None
