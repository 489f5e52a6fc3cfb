"""A request's `Host` is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2-3)."""

from __future__ import annotations

import pytest

from service.api.host_field import (
    BAD_HOST_DETAIL,
    HOSTS_DETAIL,
    NO_HOST_DETAIL,
    host_fault,
    valid_host,
)

VALID = [
    b"example.com",
    b"example.com:8080",
    b"example.com:",
    b"127.0.0.1",
    b"localhost:1",
    b"[::1]",
    b"[2001:db8::7]:443",
    b"[::ffff:192.0.2.1]",
    b"[v1.fe80::a+en1]",
    b"caf%C3%A9.example",
    b"a!$&'()*+,;=b",
    b"",
]

INVALID = [
    b"a b c/",
    b"example.com/path",
    b"user@example.com",
    b"example.com:80:80",
    b"example.com:http",
    b"::1",
    b"[::1",
    b"[::1]x",
    b"[::g]",
    b"[fe80::1%25en0]",
    b"[v1]",
    b"caf%C3.example%",
    "café.example".encode(),
    b"example.com\x00",
]


@pytest.mark.parametrize("value", VALID)
def test_a_host_of_rfc_3986_with_an_optional_port_is_valid(value: bytes) -> None:
    assert valid_host(value)


@pytest.mark.parametrize("value", INVALID)
def test_a_value_that_is_not_a_host_and_port_is_invalid(value: bytes) -> None:
    assert not valid_host(value)


def test_an_http_1_1_request_without_host_is_refused() -> None:
    assert host_fault("1.1", []) == NO_HOST_DETAIL


def test_an_http_1_0_request_without_host_is_not_refused() -> None:
    assert host_fault("1.0", []) is None


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_a_request_with_two_host_fields_is_refused(version: str) -> None:
    assert host_fault(version, [b"a", b"a"]) == HOSTS_DETAIL


def test_whitespace_after_the_host_is_not_part_of_it() -> None:
    assert host_fault("1.1", [b"example.com \t"]) is None


def test_an_invalid_host_is_refused() -> None:
    assert host_fault("1.1", [b"a b"]) == BAD_HOST_DETAIL
