"""`Content-Type` values read by RFC 9110 §8.3.1's grammar."""

from __future__ import annotations

import pytest

from service.api.media_types import charset, media_type
from service.api.problems import Problem


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
def test_a_malformed_media_type_is_a_400(value: str) -> None:
    with pytest.raises(Problem) as raised:
        media_type(value)
    assert raised.value.status == 400


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
