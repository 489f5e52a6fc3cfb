"""The in-memory moving window behind per-client call-start rate limits."""

from __future__ import annotations

import pytest

from service.ratelimit import MovingWindow


def test_hits_up_to_the_limit_are_allowed() -> None:
    window = MovingWindow(3, 10.0)
    assert [window.hit("a", t) for t in (0.0, 1.0, 2.0)] == [0.0, 0.0, 0.0]


def test_a_hit_over_the_limit_waits_until_the_oldest_leaves_the_window() -> None:
    window = MovingWindow(2, 10.0)
    window.hit("a", 0.0)
    window.hit("a", 4.0)
    assert window.hit("a", 6.0) == pytest.approx(4.0)


def test_a_refused_hit_is_not_counted() -> None:
    window = MovingWindow(1, 10.0)
    window.hit("a", 0.0)
    window.hit("a", 5.0)
    assert window.hit("a", 10.5) == 0.0


def test_each_key_has_its_own_window() -> None:
    window = MovingWindow(1, 10.0)
    window.hit("a", 0.0)
    assert window.hit("b", 1.0) == 0.0


def test_keys_idle_for_a_whole_window_are_forgotten() -> None:
    window = MovingWindow(5, 10.0)
    for n in range(1000):
        window.hit(f"client-{n}", 0.0)
    window.hit("late", 10.5)
    assert len(window) == 1
