"""`Content-Type` values read by RFC 9110 §8.3.1's grammar."""

from __future__ import annotations

import pytest

from service.media_types import charset, is_json, media_type


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/sdp", "application/sdp"),
        ("Application/JSON; charset=UTF-8", "application/json"),
        ("application/sdp;;", "application/sdp"),
        ("text/plain ; ; charset=utf-8 ;", "text/plain"),
        ('multipart/form-data; boundary="a b;c"', "multipart/form-data"),
        ('a/b; x="q\\"z"', "a/b"),
        ("", ""),
        (None, ""),
    ],
)
def test_a_well_formed_media_type_is_read_lower_cased(value: str | None, expected: str) -> None:
    assert media_type(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "application/sdp;;;;==",
        "application/sdp; charset",
        "application/sdp;=x",
        "application/sdp; a=b=c",
        "application",
        "application/",
        "/sdp",
        "application/sdp x",
        'a/b; x="unterminated',
        "a/b" + "; " * 4000 + "==",
    ],
)
def test_a_malformed_media_type_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not a well-formed media type"):
        media_type(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", None),
        ("application/json; charset=UTF-8", "utf-8"),
        ('application/json; x="charset=no"; Charset="Latin-1"', "latin-1"),
    ],
)
def test_the_charset_parameter_is_read_unquoted_and_lower_cased(
    value: str, expected: str | None
) -> None:
    assert charset(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=UTF-8", True),
        ("application/problem+json", True),
        ("application/vnd.example+JSON", True),
        ("application/jsonl", False),
        ("text/plain", False),
        ("application/json;=", False),
        (None, False),
    ],
)
def test_json_is_application_json_or_a_plus_json_type(value: str | None, expected: bool) -> None:
    assert is_json(value) is expected
