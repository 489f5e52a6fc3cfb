"""`If-Match` holds as RFC 9110 §13.1.1 says: for `*`, or when a listed entity tag is the
resource's by the strong comparison."""

from __future__ import annotations

import pytest

from service.api.preconditions import MalformedEntityTags, if_match_holds

CURRENT = '"rtc_1"'


@pytest.mark.parametrize(
    "lines",
    [
        ['"rtc_1"'],
        ["*"],
        [' "a", "rtc_1" '],
        ['"a"', '"rtc_1"'],
        ['"a",,"rtc_1",'],
        ['"x,y", "rtc_1"'],
    ],
    ids=["alone", "any", "in-a-list", "on-another-line", "empty-members", "comma-inside-a-tag"],
)
def test_the_condition_holds(lines: list[str]) -> None:
    assert if_match_holds(lines, CURRENT)


@pytest.mark.parametrize(
    "lines",
    [['"rtc_2"'], ['W/"rtc_1"'], ['"a", W/"rtc_1"'], ['"rtc_1x"']],
    ids=["other", "weak", "weak-in-a-list", "prefix"],
)
def test_the_condition_does_not_hold(lines: list[str]) -> None:
    assert not if_match_holds(lines, CURRENT)


@pytest.mark.parametrize("lines", [["rtc_1"], ['"rtc_1";x'], ['"a" "rtc_1"'], ['*, "rtc_1"']])
def test_a_field_that_is_no_list_of_entity_tags_is_malformed(lines: list[str]) -> None:
    with pytest.raises(MalformedEntityTags):
        if_match_holds(lines, CURRENT)
