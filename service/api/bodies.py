"""Reading request bodies with every limit enforced while they are read.

A body is consumed chunk by chunk as the server receives it: the size limit applies before and
during the read, and a `multipart/form-data` body (RFC 7578) is parsed incrementally by
python-multipart (https://github.com/Kludex/python-multipart), so the work per chunk is linear in
the chunk and the event loop is never held by one hostile body.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from service.api.problems import CLIENT_CLOSED_REQUEST, Problem

# RFC 9110 §8.6: Content-Length = 1*DIGIT (ASCII only: str.isdigit also takes "²").
_DECIMAL = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class FormLimits:
    """Bounds on a multipart body: total bytes, parts, header lines and their parameters."""

    max_bytes: int
    max_parts: int
    max_part_headers: int
    max_header_bytes: int
    max_header_params: int


def _too_large(detail: str) -> Problem:
    return Problem(413, detail, kind="too-large")


def _bad_form(detail: str) -> Problem:
    return Problem(400, detail, kind="bad-multipart")


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if _DECIMAL.fullmatch(declared) is None:
        raise Problem(400, "Content-Length is not a number", kind="bad-length")
    if int(declared) > limit:
        raise _too_large(f"body of {declared} bytes exceeds the {limit}-byte limit")


def _check_coding(request: Request) -> None:
    """415 for a body in a content coding (RFC 9110 §8.4): none is decoded here, so a gzipped
    body would be read as what it encodes. `identity` is no coding."""
    listed = ",".join(request.headers.getlist("content-encoding")).split(",")
    codings = [c.strip().lower() for c in listed if c.strip()]
    if any(c != "identity" for c in codings):
        raise Problem(
            415,
            "the body must not be in a content coding (Content-Encoding): send it as it is",
            kind="unsupported-content-coding",
            # RFC 9110 §12.5.3: what a 415 for a content coding may say is accepted.
            headers={"Accept-Encoding": "identity"},
        )


async def _chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; 413 at the first one that crosses `limit`, 415 when a
    non-empty body is in a content coding, 499 when the client leaves before its end (routine,
    so answered rather than raised as a server error; nobody reads that answer)."""
    _check_declared_length(request, limit)
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(f"body exceeds the {limit}-byte limit")
            if chunk:
                if size == len(chunk):
                    _check_coding(request)
                yield chunk
    except ClientDisconnect:
        raise Problem(
            CLIENT_CLOSED_REQUEST, "the client left before its body was read", kind="client-gone"
        ) from None


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed `limit` bytes.

    A declared Content-Length over the limit is refused without reading anything; a chunked
    body is refused at the first chunk that crosses the limit. 400 for a Content-Length that is
    not a decimal number.
    """
    return b"".join([chunk async for chunk in _chunks(request, limit)])


def _checked_header(value: str, limits: FormLimits, what: str) -> None:
    # Checked before the value is split into parameters, so that splitting stays cheap.
    if len(value) > limits.max_header_bytes:
        raise _bad_form(f"{what} is longer than {limits.max_header_bytes} bytes")
    if value.count(";") > limits.max_header_params:
        raise _bad_form(f"{what} has more than {limits.max_header_params} parameters")


@dataclass
class MultipartForm:
    """A `multipart/form-data` body parsed as it is fed; sans-I/O.

    `feed(chunk)` for each chunk received, then `finish()` for the fields by name. Raises
    `Problem`: 400 for a malformed body (bad boundary, headers too long or with too many
    parameters, a part without a name, a field twice, a truncated body), 413 for too many parts.

    A preamble (text before the first boundary delimiter line) and an epilogue (after the close
    delimiter) are ignored, as RFC 2046 §5.1.1 says
    (https://www.rfc-editor.org/rfc/rfc2046#section-5.1.1): python-multipart discards the
    epilogue itself but takes only line breaks before the first delimiter, so the preamble is
    skipped here, up to the first line that starts with `--boundary` (after CRLF or, as
    python-multipart also takes, a bare LF). Neither is kept; both count towards the body's size
    limit, which the reader enforces.
    """

    content_type: str
    limits: FormLimits
    fields: dict[str, bytes] = field(default_factory=dict)
    _parser: MultipartParser | None = None
    _delimiter: bytes = b""
    # The body's bytes not yet known to hold no delimiter (at most the delimiter's length less
    # one), behind a line break standing for the start of the body; None past the preamble.
    _preamble: bytearray | None = field(default_factory=lambda: bytearray(b"\n"))
    _parts: int = 0
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _header_name: bytearray = field(default_factory=bytearray)
    _header_value: bytearray = field(default_factory=bytearray)
    _data: bytearray = field(default_factory=bytearray)
    _ended: bool = False

    def __post_init__(self) -> None:
        _checked_header(self.content_type, self.limits, "Content-Type")
        _, params = parse_options_header(self.content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise _bad_form("multipart Content-Type has no boundary")
        # RFC 2046 §5.1.1: a delimiter is CRLF "--" boundary, and the first may open the body;
        # the LF alone is looked for, as python-multipart also takes lines ended by a bare LF.
        self._delimiter = b"\n--" + boundary
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_field,
                    "on_header_value": self._header_value_data,
                    "on_header_end": self._header_end,
                    "on_part_data": self._part_data,
                    "on_part_end": self._part_end,
                    "on_end": self._end,
                },
                max_size=self.limits.max_bytes,
                max_header_count=self.limits.max_part_headers,
                max_header_size=self.limits.max_header_bytes,
            )
        except FormParserError as exc:
            raise _bad_form(f"malformed multipart boundary: {exc}") from None

    def feed(self, chunk: bytes) -> None:
        """Parse one more chunk of the body."""
        assert self._parser is not None
        if self._preamble is not None:
            chunk = self._past_preamble(chunk)
            if not chunk:
                return
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise _bad_form(f"malformed multipart body: {exc}") from None

    def _past_preamble(self, chunk: bytes) -> bytes:
        """What of `chunk` follows the preamble, from the first delimiter line's `--boundary`
        on; empty while the preamble goes on."""
        assert self._preamble is not None
        self._preamble += chunk
        at = self._preamble.find(self._delimiter)
        if at == -1:
            # Only a delimiter split across chunks can still start in what was seen.
            del self._preamble[: -(len(self._delimiter) - 1)]
            return b""
        rest = bytes(self._preamble[at + 1 :])
        self._preamble = None
        return rest

    def finish(self) -> dict[str, bytes]:
        """The fields by name, once the closing boundary has been seen."""
        if not self._ended:
            raise _bad_form("multipart body ends before its closing boundary")
        return self.fields

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.limits.max_parts:
            raise _too_large(f"multipart body has more than {self.limits.max_parts} parts")
        self._headers = {}
        self._data = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name = bytearray()
        self._header_value = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]

    def _part_end(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"").decode("latin-1")
        _checked_header(disposition, self.limits, "Content-Disposition")
        _, params = parse_options_header(disposition)
        name = params.get(b"name", b"").decode("latin-1")
        if not name:
            raise _bad_form("a multipart part has no field name")
        if name in self.fields:
            raise _bad_form(f"multipart field {name[:64]!r} appears twice")
        self.fields[name] = bytes(self._data)

    def _end(self) -> None:
        self._ended = True


async def read_form(request: Request, limits: FormLimits) -> dict[str, bytes]:
    """The fields of a `multipart/form-data` request body by name (see `MultipartForm`).

    413 when the body exceeds `limits.max_bytes`; 400 when it is malformed.
    """
    form = MultipartForm(request.headers.get("content-type", ""), limits)
    async for chunk in _chunks(request, limits.max_bytes):
        form.feed(chunk)
    return form.finish()
