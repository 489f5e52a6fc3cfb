"""The cache of the provider's resolved host name: kept for its TTL, bounded, forgotten when
none of its addresses answers."""

from __future__ import annotations

from signaling.addresses import AddressCache, is_host_name
from signaling.realtime.sideband import sideband_addresses


def test_a_resolution_is_used_until_its_ttl_has_passed() -> None:
    cache = AddressCache(ttl_s=10.0)
    cache.remember("api.example", 443, ("192.0.2.1", "192.0.2.2"), now=100.0)
    assert cache.addresses("api.example", 443, now=109.9) == ("192.0.2.1", "192.0.2.2")
    assert cache.addresses("api.example", 443, now=110.0) is None


def test_a_resolution_is_kept_per_host_and_port() -> None:
    cache = AddressCache()
    cache.remember("api.example", 443, ("192.0.2.1",), now=0.0)
    assert cache.addresses("api.example", 8443, now=0.0) is None
    assert cache.addresses("other.example", 443, now=0.0) is None


def test_past_the_host_cap_the_least_recently_resolved_is_dropped() -> None:
    cache = AddressCache(max_hosts=2)
    for n in range(3):
        cache.remember(f"h{n}.example", 443, (f"192.0.2.{n}",), now=0.0)
    assert cache.addresses("h0.example", 443, now=0.0) is None
    assert cache.addresses("h2.example", 443, now=0.0) == ("192.0.2.2",)


def test_a_forgotten_host_is_resolved_again() -> None:
    cache = AddressCache()
    cache.remember("api.example", 443, ("192.0.2.1",), now=0.0)
    cache.forget("api.example", 443)
    assert cache.addresses("api.example", 443, now=0.0) is None


def test_an_empty_resolution_is_not_kept() -> None:
    cache = AddressCache()
    cache.remember("api.example", 443, (), now=0.0)
    assert cache.addresses("api.example", 443, now=0.0) is None


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
