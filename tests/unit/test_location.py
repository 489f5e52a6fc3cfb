"""`parse_call_id`: the provider's Location header -> the call id, strictly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.ids import is_valid_call_id
from signaling.location import (
    InvalidCallIdError,
    LocationError,
    MissingLocationError,
    NoCallIdError,
    NonAsciiLocationError,
    parse_call_id,
)

UUID = "019eb97d-8e9a-7ff3-94b0-ea019babd5d7"


def test_relative_location_yields_the_last_segment() -> None:
    location = "/v1/realtime/calls/rtc_u0_Dbq65nhak5eLjQZ73yhAy"
    assert parse_call_id(location) == "rtc_u0_Dbq65nhak5eLjQZ73yhAy"


def test_absolute_url_yields_the_last_segment() -> None:
    assert parse_call_id("https://api.openai.com/v1/realtime/calls/rtc_x") == "rtc_x"


def test_trailing_slash_is_skipped() -> None:
    assert parse_call_id("/v1/realtime/calls/rtc_abc/") == "rtc_abc"


def test_query_string_is_ignored() -> None:
    assert parse_call_id("/v1/realtime/calls/rtc_abc?foo=bar") == "rtc_abc"


def test_call_id_in_the_query_string_is_not_taken() -> None:
    assert parse_call_id("/v1/realtime/calls/rtc_real?next=/rtc_decoy") == "rtc_real"


def test_fragment_is_ignored() -> None:
    assert parse_call_id("/v1/realtime/calls/rtc_abc#details") == "rtc_abc"


def test_call_id_in_the_fragment_is_not_taken() -> None:
    assert parse_call_id("/v1/realtime/calls/rtc_real#/rtc_decoy") == "rtc_real"


def test_question_mark_inside_the_fragment_does_not_start_a_query() -> None:
    assert parse_call_id("/v1/realtime/calls/rtc_real#x?/rtc_decoy") == "rtc_real"


def test_forwarded_form_with_repeated_calls_segment_is_accepted() -> None:
    assert parse_call_id("/v1/realtime/calls/calls/rtc_backend_test") == "rtc_backend_test"


def test_uuid_segment_is_accepted() -> None:
    assert parse_call_id(f"/v1/realtime/calls/{UUID}") == UUID


def test_uppercase_uuid_segment_is_accepted() -> None:
    assert parse_call_id(f"/v1/realtime/calls/{UUID.upper()}") == UUID.upper()


def test_bytes_header_is_decoded_as_ascii() -> None:
    assert parse_call_id(b"/v1/realtime/calls/rtc_bytes") == "rtc_bytes"


def test_last_call_id_like_segment_wins() -> None:
    assert parse_call_id("/calls/rtc_first/rtc_second") == "rtc_second"


def test_bare_rtc_prefix_segment_is_skipped_in_favour_of_an_earlier_id() -> None:
    assert parse_call_id("/calls/rtc_abc/rtc_") == "rtc_abc"


def test_rtc_id_of_the_maximum_length_is_accepted() -> None:
    call_id = "rtc_" + "a" * 128
    assert parse_call_id(f"/v1/realtime/calls/{call_id}") == call_id


@pytest.mark.parametrize("location", [None, "", b""])
def test_missing_or_empty_header_is_missing(location: str | bytes | None) -> None:
    with pytest.raises(MissingLocationError, match="missing the Location header"):
        parse_call_id(location)


def test_non_ascii_text_is_rejected() -> None:
    with pytest.raises(NonAsciiLocationError, match="not visible ASCII"):
        parse_call_id("/v1/realtime/calls/rtc_caf\u00e9")


def test_bytes_that_are_not_ascii_are_rejected() -> None:
    with pytest.raises(NonAsciiLocationError, match="not visible ASCII"):
        parse_call_id(b"/v1/realtime/calls/rtc_caf\xc3\xa9")


@pytest.mark.parametrize("char", [" ", "\t", "\r", "\n", "\x00", "\x1b", "\x7f"])
def test_space_and_control_characters_are_rejected(char: str) -> None:
    with pytest.raises(NonAsciiLocationError):
        parse_call_id(f"/v1/realtime/calls/rtc_abc{char}")


def test_path_without_a_call_id_is_rejected_naming_the_location() -> None:
    with pytest.raises(NoCallIdError, match=r"does not contain a call id: '/v1/realtime/calls'$"):
        parse_call_id("/v1/realtime/calls")


def test_bare_rtc_prefix_is_not_a_call_id() -> None:
    with pytest.raises(NoCallIdError):
        parse_call_id("/v1/realtime/calls/rtc_")


def test_call_id_only_in_the_query_is_not_found() -> None:
    with pytest.raises(NoCallIdError):
        parse_call_id("/v1/realtime/calls?id=rtc_abc")


def test_long_location_is_truncated_in_the_message() -> None:
    location = "/v1/" + "x" * 10_000
    with pytest.raises(NoCallIdError) as caught:
        parse_call_id(location)
    assert len(str(caught.value)) < 300
    assert "truncated from 10004" in str(caught.value)


@pytest.mark.parametrize(
    "segment",
    ["rtc_a%2Fb", "rtc_a.b", "rtc_a:b", "rtc_a~b", "rtc_" + "a" * 129],
)
def test_rtc_segment_outside_the_call_id_alphabet_or_length_is_invalid(segment: str) -> None:
    with pytest.raises(InvalidCallIdError, match="invalid call id"):
        parse_call_id(f"/v1/realtime/calls/{segment}")


def test_invalid_last_candidate_does_not_fall_back_to_an_earlier_one() -> None:
    with pytest.raises(InvalidCallIdError):
        parse_call_id("/calls/rtc_good/rtc_bad%20")


@pytest.mark.parametrize(
    "error",
    [MissingLocationError, NonAsciiLocationError, NoCallIdError, InvalidCallIdError],
)
def test_every_location_error_is_a_location_error_and_a_value_error(
    error: type[LocationError],
) -> None:
    assert issubclass(error, LocationError)
    assert issubclass(error, ValueError)


_URLISH = st.text(alphabet="rtc_/?#%.-:aZ09 \u00e9", max_size=60)


@given(st.one_of(st.none(), st.text(), st.binary(), _URLISH, _URLISH.map(str.encode)))
def test_any_input_yields_a_safe_call_id_or_a_location_error(
    location: str | bytes | None,
) -> None:
    try:
        call_id = parse_call_id(location)
    except LocationError:
        return
    assert is_valid_call_id(call_id)
    assert not set(call_id) & set("/?#%")


_VISIBLE_ASCII = "".join(chr(code) for code in range(0x21, 0x7F))
_SEGMENT_CHARS = _VISIBLE_ASCII.translate(str.maketrans("", "", "/?#"))


@st.composite
def _locations_naming(draw: st.DrawFn, call_id: str) -> str:
    origin = draw(st.sampled_from(["", "https://api.openai.com", "http://127.0.0.1:8080"]))
    prefix = draw(st.lists(st.text(alphabet=_SEGMENT_CHARS, max_size=12), max_size=5))
    trailing_slash = draw(st.sampled_from(["", "/"]))
    query = draw(
        st.one_of(st.just(""), st.text(alphabet=_VISIBLE_ASCII.replace("#", "")).map("?{}".format))
    )
    fragment = draw(st.one_of(st.just(""), st.text(alphabet=_VISIBLE_ASCII).map("#{}".format)))
    path = "/".join(["", *prefix, call_id])
    return f"{origin}{path}{trailing_slash}{query}{fragment}"


_CALL_IDS = st.one_of(
    st.from_regex(r"rtc_[A-Za-z0-9_-]{1,128}", fullmatch=True),
    st.uuids().map(str),
    st.uuids().map(lambda uuid: str(uuid).upper()),
)


@given(st.data(), _CALL_IDS)
def test_constructed_location_round_trips_to_its_call_id(data: st.DataObject, call_id: str) -> None:
    location = data.draw(_locations_naming(call_id))
    assert parse_call_id(location) == call_id
    assert parse_call_id(location.encode("ascii")) == call_id
