"""Handoff text as its call takes it in: redacted, then capped (results and failures cut with a
marker, progress on a budget)."""

from __future__ import annotations

from service.calls.handoff_text import CUT_MARKER, admit, capped, cut, utf8_size
from service.handoffs.queue import HandoffEvent

MARKER = CUT_MARKER.format(limit=100)
# Hex, like an Azure key: nothing but the configured secret can match it.
KEY = "3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e"


def _event(kind: str, text: str) -> HandoffEvent:
    return HandoffEvent(kind, "rtc_1:call_1", "rtc_1", "call_1", text)  # type: ignore[arg-type]


def test_text_within_the_cap_is_kept_as_it_is() -> None:
    event = _event("result", "é" * 50)
    assert capped(event, 0, 100) == (event, False)


def test_a_result_over_the_cap_is_cut_to_it_and_ends_with_the_marker() -> None:
    bounded, hit = capped(_event("result", "x" * 1000), 0, 100)
    assert hit
    assert bounded is not None
    assert bounded.text.endswith(MARKER)
    assert utf8_size(bounded.text) == 100


def test_a_cut_never_splits_a_character() -> None:
    text = cut("€" * 100, 100, 100)
    assert text.endswith(MARKER)
    assert set(text.removesuffix(MARKER)) == {"€"}


def test_a_failure_over_the_cap_is_cut_too() -> None:
    bounded, hit = capped(_event("failed", "x" * 1000), 0, 100)
    assert hit
    assert bounded is not None
    assert bounded.text.endswith(MARKER)


def test_progress_is_cut_to_what_is_left_of_the_handoffs_budget() -> None:
    bounded, hit = capped(_event("progress", "x" * 200), 20, 100)
    assert hit
    assert bounded is not None
    assert bounded.text.endswith(MARKER)
    assert utf8_size(bounded.text) == 80


def test_short_progress_fits_in_what_is_left_of_the_budget() -> None:
    event = _event("progress", "almost done")
    assert capped(event, 80, 100) == (event, False)


def test_progress_past_the_handoffs_budget_is_dropped() -> None:
    assert capped(_event("progress", "x" * 60), 60, 100) == (None, True)


def test_a_lone_surrogate_is_measured_without_failing() -> None:
    assert utf8_size("\ud800") == 3


def test_a_configured_secret_in_handoff_text_is_redacted() -> None:
    admitted, hit = admit(_event("failed", f"db failed for key {KEY}"), 0, 100, [KEY])
    assert admitted is not None
    assert (admitted.text, hit) == ("db failed for key [REDACTED]", False)


def test_a_secret_straddling_the_cut_is_redacted_whole_before_the_cut() -> None:
    kept = 100 - utf8_size(MARKER)
    before = "x" * (kept - 10)
    admitted, hit = admit(_event("result", before + KEY + "y" * 100), 0, 100, [KEY])
    assert admitted is not None
    assert hit
    assert admitted.text == before + "[REDACTED]" + MARKER
