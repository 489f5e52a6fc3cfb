"""The call-creation body: `multipart/form-data` (RFC 7578) that a multipart parser reads back."""

from __future__ import annotations

import pytest

from service.api.bodies import FormLimits, MultipartForm
from service.api.problems import Problem
from signaling.provider import _form

_LIMITS = FormLimits(
    max_bytes=1 << 20, max_parts=4, max_part_headers=4, max_header_bytes=256, max_header_params=4
)


def test_each_field_is_read_back_by_name() -> None:
    body, content_type = _form(
        {
            "sdp": (b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n", "application/sdp"),
            "session": (b"{}", "application/json"),
        }
    )
    form = MultipartForm(content_type, _LIMITS)
    form.feed(body)
    assert form.finish() == {"sdp": b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n", "session": b"{}"}


def test_each_part_declares_its_content_type() -> None:
    body, _ = _form({"sdp": (b"x", "application/sdp"), "session": (b"{}", "application/json")})
    assert b'Content-Type: application/sdp\r\nContent-Disposition: form-data; name="sdp"' in body
    assert b'Content-Type: application/json\r\nContent-Disposition: form-data; name="session"' in (
        body
    )


def test_every_body_has_its_own_boundary() -> None:
    fields = {"sdp": (b"x", "application/sdp")}
    assert _form(fields)[1] != _form(fields)[1]


_PREAMBLE = b"This is the preamble.  It is to be ignored (RFC 2046 \xc2\xa75.1.1).\r\n"
_EPILOGUE = b"\r\nThis is the epilogue.  It is also to be ignored.\r\n"


def _offer_form() -> tuple[bytes, str]:
    return _form({"sdp": (b"v=0\r\n", "application/sdp"), "session": (b"{}", "application/json")})


def test_a_preamble_before_the_first_boundary_is_ignored() -> None:
    body, content_type = _offer_form()
    form = MultipartForm(content_type, _LIMITS)
    form.feed(_PREAMBLE + body)
    assert form.finish() == {"sdp": b"v=0\r\n", "session": b"{}"}


def test_a_preamble_is_ignored_when_the_first_delimiter_arrives_a_byte_at_a_time() -> None:
    body, content_type = _offer_form()
    form = MultipartForm(content_type, _LIMITS)
    for byte in _PREAMBLE + body:
        form.feed(bytes([byte]))
    assert form.finish() == {"sdp": b"v=0\r\n", "session": b"{}"}


def test_a_body_opened_by_a_bare_line_feed_before_its_first_delimiter_is_read() -> None:
    body, content_type = _offer_form()
    form = MultipartForm(content_type, _LIMITS)
    form.feed(b"\n" + body)
    assert form.finish() == {"sdp": b"v=0\r\n", "session": b"{}"}


def test_a_preamble_of_lines_ended_by_a_bare_line_feed_is_ignored() -> None:
    body, content_type = _offer_form()
    form = MultipartForm(content_type, _LIMITS)
    form.feed(b"a preamble line\nanother\n" + body)
    assert form.finish() == {"sdp": b"v=0\r\n", "session": b"{}"}


def test_a_preamble_line_holding_the_boundary_only_after_its_start_is_skipped() -> None:
    body, content_type = _offer_form()
    boundary = content_type.split("boundary=")[1].encode()
    form = MultipartForm(content_type, _LIMITS)
    form.feed(b"not a delimiter: --" + boundary + b"\r\n" + body)
    assert form.finish() == {"sdp": b"v=0\r\n", "session": b"{}"}


def test_an_epilogue_after_the_close_delimiter_is_ignored() -> None:
    body, content_type = _offer_form()
    form = MultipartForm(content_type, _LIMITS)
    form.feed(body + _EPILOGUE)
    assert form.finish() == {"sdp": b"v=0\r\n", "session": b"{}"}


def test_a_body_that_is_all_preamble_is_read_then_refused_as_having_no_parts() -> None:
    _, content_type = _offer_form()
    form = MultipartForm(content_type, _LIMITS)
    form.feed(_PREAMBLE * 100)
    with pytest.raises(Problem) as refused:
        form.finish()
    assert refused.value.status == 400
