"""Checks on a client's SDP offer before it is sent to the provider.

The provider's answer to a bad offer is an opaque error, so we reject what it cannot use with a
precise reason first: text that is not an SDP document (RFC 8866), ICE and DTLS attributes with
impossible values (RFC 8839, RFC 8122), and offers a voice call cannot work with (no live audio
section, or a section without the transport attributes JSEP requires). A section with port 0 is
live when it is `a=bundle-only` and its mid is in the BUNDLE group (RFC 8843 §7.2, RFC 9429
§5.2.1: Firefox offers so with max-bundle); otherwise port 0 rejects it. It is a check, not a
rewrite: an accepted offer is passed on exactly as received.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NoReturn

MAX_OFFER_BYTES = 65536


class OfferErrorKind(StrEnum):
    """Why an offer was refused; the service maps each kind to an HTTP status."""

    NOT_TEXT = "not_text"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNACCEPTABLE = "unacceptable"


class OfferError(ValueError):
    """An SDP offer that must not be passed to the provider."""

    def __init__(self, kind: OfferErrorKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


# Cc (C0, DEL, C1) except TAB, LF and CR, plus lone surrogates, which a str can hold but which
# cannot be encoded as UTF-8 for the provider.
_NOT_TEXT_CHAR = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# RFC 8866 §5: a parser must refuse a description with a type letter it does not understand.
_KNOWN_TYPES = frozenset("vosiuepcbtrzkam")
# The whole grammar `_parse` enforces line by line, as one pattern: `v=0` first, then lines of a
# known type with a value of text (TAB allowed), each ended by CRLF or LF, the last one maybe not.
# An offer it matches is checked with a walk over only the lines the checks read; any other goes
# through `_parse`, which names the first offending line.
_LINE_VALUE = r"[^\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]+"
_WELL_FORMED = re.compile(
    rf"v=0(?:\r?\n[{''.join(sorted(_KNOWN_TYPES))}]={_LINE_VALUE})*(?:\r?\n)?"
)
_TOKEN = r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+"
# The port is at most five digits so that `int()` never sees a huge number.
_MEDIA_LINE = re.compile(
    rf"(?P<media>{_TOKEN}) (?P<port>[0-9]{{1,5}})(?:/[0-9]+)? {_TOKEN}(?:/{_TOKEN})*(?: {_TOKEN})+"
)
_MAX_PORT = 65535
_TOKEN_ONLY = re.compile(_TOKEN)
_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]+")
# RFC 8122 §5 names these hash functions; for them the fingerprint's length is known.
_DIGEST_BYTES = {
    "md2": 16,
    "md5": 16,
    "sha-1": 20,
    "sha-224": 28,
    "sha-256": 32,
    "sha-384": 48,
    "sha-512": 64,
}
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]*")
_SETUP_ROLES = ("actpass", "active", "passive", "holdconn")
_TRANSPORT_ATTRIBUTES = ("ice-ufrag", "ice-pwd", "fingerprint", "setup")
# Lines that must come before the first m= line (RFC 8866 §5).
_REQUIRED_SESSION_TYPES = ("o", "s")
# What the checks read: the lines a shape-checked offer is walked over.
_READ_ATTRIBUTES = (*_TRANSPORT_ATTRIBUTES, "mid", "group", "bundle-only")
_READ_LINES = (
    "m=",
    *(f"{kind}=" for kind in _REQUIRED_SESSION_TYPES),
    *(f"a={name}" for name in _READ_ATTRIBUTES),
)
_SHOWN_CHARS = 80


@dataclass
class _MediaSection:
    """One m= section, reduced to what the checks need."""

    media: str
    port: int
    line: int
    attributes: set[str] = field(default_factory=set)
    mid: str | None = None

    def live(self, bundled: set[str]) -> bool:
        """Whether the section carries media: a port, or bundle-only inside the BUNDLE group."""
        if self.port != 0:
            return True
        return "bundle-only" in self.attributes and self.mid is not None and self.mid in bundled


def check_offer(sdp: bytes | str) -> str:
    """Return the offer's text, unchanged, if it is an SDP offer the provider can take.

    Raises `OfferError`, whose `kind` says which check failed (`NOT_TEXT`, `TOO_LARGE`,
    `MALFORMED`, `UNACCEPTABLE`) and whose `reason` names the offending line or media section.
    Size is checked before anything else, so an oversized body is never decoded or parsed.
    """
    text = _decoded(sdp)
    shape_checked = _WELL_FORMED.fullmatch(text) is not None
    if not shape_checked:
        _check_text(text)
    session_attributes, bundled, media = _parse(text, shape_checked)
    _check_acceptable(session_attributes, bundled, media)
    return text


def _decoded(sdp: bytes | str) -> str:
    size = len(sdp) if isinstance(sdp, bytes) else len(sdp.encode("utf-8", "surrogatepass"))
    if size > MAX_OFFER_BYTES:
        raise OfferError(
            OfferErrorKind.TOO_LARGE,
            f"offer is {size} bytes, over the limit of {MAX_OFFER_BYTES} bytes",
        )
    if isinstance(sdp, bytes):
        try:
            text = sdp.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OfferError(
                OfferErrorKind.NOT_TEXT,
                f"offer is not UTF-8: invalid byte at byte offset {exc.start}",
            ) from None
    else:
        text = sdp
    if not text.strip():
        raise OfferError(OfferErrorKind.NOT_TEXT, "empty offer")
    return text


def _check_text(text: str) -> None:
    bad = _NOT_TEXT_CHAR.search(text)
    if bad is not None:
        raise OfferError(
            OfferErrorKind.NOT_TEXT,
            f"offer contains U+{ord(bad.group()):04X} at character offset {bad.start()},"
            " which is not allowed in text",
        )


def _parse(text: str, shape_checked: bool) -> tuple[set[str], set[str], list[_MediaSection]]:
    """The session's attributes, the BUNDLE group's mids and the media sections; raises
    `OfferError` (`MALFORMED`) naming the first bad line. With `shape_checked` (the text matches
    `_WELL_FORMED`), only the lines starting with one of `_READ_LINES` are read."""
    # Split at LF and drop the CR before it: RFC 8866 §5 lines end in CRLF, which parsers
    # should also take as LF alone.
    pieces = text.split("\n")
    last = pieces.pop()
    lines = [piece[:-1] if piece.endswith("\r") else piece for piece in pieces]
    if last:
        # Text after the last LF is a line without its terminator (an empty one is no line).
        lines.append(last)
    session_types: set[str] = set()
    session_attributes: set[str] = set()
    bundled: set[str] = set()
    media: list[_MediaSection] = []
    attributes = session_attributes
    # One pass, inline: the offer is checked on every call start.
    for number, line in enumerate(lines, start=1):
        if shape_checked:
            if not line.startswith(_READ_LINES):
                continue
            kind = line[0]
        else:
            if number == 1 and line != "v=0":
                _malformed(number, f"the first line must be 'v=0', not {_shown(line)}")
            # `<type>=<value>` as the pattern `[a-z]=.+` (no LF is left, and a CR is refused).
            kind = line[:1]
            if len(line) < 3 or line[1] != "=" or not "a" <= kind <= "z" or "\r" in line:
                _bad_line(number, line)
            if kind not in _KNOWN_TYPES:
                _malformed(number, f"unknown line type '{kind}='")
        value = line[2:]
        if kind == "a":
            name, colon, attribute_value = value.partition(":")
            check = _ATTRIBUTE_CHECKS.get(name)
            if check is not None:
                problem = check(attribute_value) if colon else "has no value"
                if problem is not None:
                    _malformed(number, f"a={name} {problem}")
            attributes.add(name)
            if name == "mid" and media:
                media[-1].mid = attribute_value
            elif name == "group" and not media:
                tokens = attribute_value.split()
                if tokens[:1] == ["BUNDLE"]:
                    bundled.update(tokens[1:])
        elif kind == "m":
            media.append(_media_section(number, value))
            attributes = media[-1].attributes
        if not media:
            session_types.add(kind)
    _check_session_lines(session_types)
    return session_attributes, bundled, media


def _check_session_lines(session_types: set[str]) -> None:
    for required in _REQUIRED_SESSION_TYPES:
        if required not in session_types:
            raise OfferError(
                OfferErrorKind.MALFORMED,
                f"offer has no {required}= line before its first m= line",
            )


def _bad_line(number: int, line: str) -> NoReturn:
    if not line:
        _malformed(number, "empty line")
    if "\r" in line:
        _malformed(number, "CR that does not end the line")
    _malformed(
        number, f"expected '<type>=<value>' with a lowercase letter type, got {_shown(line)}"
    )


def _media_section(number: int, value: str) -> _MediaSection:
    match = _MEDIA_LINE.fullmatch(value)
    if match is None:
        _malformed(
            number,
            f"expected 'm=<media> <port> <proto> <fmt> ...', got {_shown('m=' + value)}",
        )
    port = int(match["port"])
    if port > _MAX_PORT:
        _malformed(number, f"m= port {port} is out of range")
    return _MediaSection(media=match["media"], port=port, line=number)


def _check_ice_ufrag(value: str) -> str | None:
    return _check_ice_chars(value, 4)


def _check_ice_pwd(value: str) -> str | None:
    return _check_ice_chars(value, 22)


def _check_ice_chars(value: str, shortest: int) -> str | None:
    # The value is not echoed: for ice-pwd it is a credential.
    if not shortest <= len(value) <= 256:
        return f"must be {shortest} to 256 characters long, got {len(value)}"
    if _ICE_CHARS.fullmatch(value) is None:
        return "may only contain [A-Za-z0-9+/]"
    return None


def _check_fingerprint(value: str) -> str | None:
    # `<token> <hex pair>(:<hex pair>)*`, checked without a repeated group, which costs the
    # regex engine a step per pair: offers carry several fingerprints of up to 64 pairs.
    hash_function, _, hexes = value.partition(" ")
    pairs = (len(hexes) + 1) // 3
    if (
        _TOKEN_ONLY.fullmatch(hash_function) is None
        or len(hexes) % 3 != 2
        or hexes[2::3] != ":" * (pairs - 1)
        or _HEX_DIGITS.fullmatch(digits := hexes.replace(":", "")) is None
        or len(digits) != 2 * pairs
    ):
        return f"must be '<hash-function> <hex pairs separated by ':'>', got {_shown(value)}"
    hash_function = hash_function.lower()
    expected = _DIGEST_BYTES.get(hash_function)
    if expected is not None and pairs != expected:
        return f"{hash_function} must be {expected} bytes, got {pairs}"
    return None


def _check_setup(value: str) -> str | None:
    if value not in _SETUP_ROLES:
        return f"must be one of {', '.join(_SETUP_ROLES)}, got {_shown(value)}"
    return None


_ATTRIBUTE_CHECKS: dict[str, Callable[[str], str | None]] = {
    "ice-ufrag": _check_ice_ufrag,
    "ice-pwd": _check_ice_pwd,
    "fingerprint": _check_fingerprint,
    "setup": _check_setup,
}


def _check_acceptable(
    session_attributes: set[str], bundled: set[str], media: list[_MediaSection]
) -> None:
    audio = [section for section in media if section.media == "audio"]
    if not any(section.live(bundled) for section in audio):
        detail = " (only rejected ones, with port 0)" if audio else ""
        raise OfferError(OfferErrorKind.UNACCEPTABLE, f"offer has no audio m-line{detail}")
    for index, section in enumerate(media, start=1):
        # A port-0 section is rejected or bundle-only; JSEP forbids ICE credentials in the
        # latter, so neither can be asked for transport attributes.
        if section.port == 0:
            continue
        missing = [
            f"a={name}"
            for name in _TRANSPORT_ATTRIBUTES
            if name not in section.attributes and name not in session_attributes
        ]
        if missing:
            raise OfferError(
                OfferErrorKind.UNACCEPTABLE,
                f"media section {index} ({section.media}, line {section.line})"
                f" has no {', '.join(missing)}",
            )


def _malformed(number: int, problem: str) -> NoReturn:
    raise OfferError(OfferErrorKind.MALFORMED, f"line {number} is malformed: {problem}")


def _shown(value: str) -> str:
    if len(value) <= _SHOWN_CHARS:
        return repr(value)
    return f"{value[:_SHOWN_CHARS]!r}... (truncated from {len(value)})"
