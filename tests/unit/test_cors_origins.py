"""`CALLBRIDGE_CORS_ORIGINS` holds origins as browsers send them (RFC 6454 §6.2), since CORS
compares them as strings: an entry is normalised to that form, or refused when it is not one."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from service.settings import Settings, describe_invalid


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://app.example/", "https://app.example"),
        ("HTTPS://App.Example", "https://app.example"),
        ("https://app.example:443", "https://app.example"),
        ("http://app.example:80", "http://app.example"),
        ("https://app.example:8443", "https://app.example:8443"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("https://Bücher.example", "https://xn--bcher-kva.example"),
        ("https://a.example, http://b.example", "https://a.example,http://b.example"),
        ("*", "*"),
        ("", ""),
    ],
)
def test_an_origin_is_kept_as_a_browser_sends_it(given: str, kept: str) -> None:
    assert Settings(cors_origins=given).cors_origins == kept


@pytest.mark.parametrize(
    "given",
    ["app.example", "not a url", "https://u:p@app.example", "https://app.example:99999", "*,a"],
)
def test_what_is_not_an_origin_is_refused(given: str) -> None:
    with pytest.raises(ValidationError, match="is not an origin"):
        Settings(cors_origins=given)


def test_an_origin_with_a_path_is_refused_naming_the_origin_meant() -> None:
    with pytest.raises(ValidationError, match=re.escape("give 'https://app.example'")):
        Settings(cors_origins="https://app.example/app")


@pytest.mark.parametrize(
    "given", ["https://bob:hunter2@app.example", "https://app.example/?token=hunter2"]
)
def test_a_refused_entry_is_not_echoed(given: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(cors_origins=given)
    assert "hunter2" not in describe_invalid(refused.value)
