"""The webhook replay cache: ids are refused while remembered; memory stays bounded."""

from __future__ import annotations

from service.webhook_verification import ReplayCache


def test_a_new_id_is_a_first_sighting() -> None:
    assert ReplayCache(10, ttl_s=600).first_sighting("wh_1", now=0.0)


def test_a_repeated_id_within_the_ttl_is_not() -> None:
    cache = ReplayCache(10, ttl_s=600)
    cache.first_sighting("wh_1", now=0.0)
    assert not cache.first_sighting("wh_1", now=599.0)


def test_an_id_is_forgotten_once_its_ttl_has_passed() -> None:
    cache = ReplayCache(10, ttl_s=600)
    cache.first_sighting("wh_1", now=0.0)
    cache.first_sighting("wh_2", now=700.0)
    assert len(cache) == 1
    assert cache.first_sighting("wh_1", now=700.0)


def test_a_full_cache_forgets_the_oldest_id_first() -> None:
    cache = ReplayCache(2, ttl_s=600)
    for n, webhook_id in enumerate(("wh_1", "wh_2", "wh_3")):
        cache.first_sighting(webhook_id, now=float(n))
    assert len(cache) == 2
    assert not cache.first_sighting("wh_3", now=4.0)
    assert cache.first_sighting("wh_1", now=5.0)
