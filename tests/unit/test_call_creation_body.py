"""The call-creation body: `multipart/form-data` (RFC 7578) that a multipart parser reads back."""

from __future__ import annotations

from service.api.bodies import FormLimits, MultipartForm
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
