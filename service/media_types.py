"""A `Content-Type`, read strictly by RFC 9110's grammar: a request's, and the answer of an
endpoint we call.

RFC 9110 §8.3.1 (https://www.rfc-editor.org/rfc/rfc9110#section-8.3.1):
`media-type = type "/" subtype parameters`, where §5.6.6 makes each parameter optional between
semicolons (`text/plain;;charset=utf-8` is well formed) but a parameter that is present must be
`token "=" ( token / quoted-string )`. Lenient parsers (python-multipart's, the standard
library's) skip what does not fit, so a value such as `application/sdp;;;;==` would pass as
`application/sdp`; here it is malformed. Type and subtype are case-insensitive, so
`Application/JSON` is JSON.
"""

from __future__ import annotations

import codecs
import re

JSON_TYPE = "application/json"
JSON_SUFFIX = "+json"
"""A structured syntax suffix saying the body is JSON (RFC 6839 §3.1,
https://www.rfc-editor.org/rfc/rfc6839#section-3.1), as in `application/problem+json`."""

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# Each stretch of whitespace can be matched one way only, so a failed match cannot backtrack
# exponentially over a long run of `; ; ;`.
_MEDIA_TYPE = re.compile(
    rf"({_TOKEN}/{_TOKEN})(?:[ \t]*;(?:[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))?)*[ \t]*"
)


def media_type(content_type: str | None) -> str:
    """The lower-cased `type/subtype` of a `Content-Type` value; `""` when there is none.

    Raises `ValueError` when the value does not follow RFC 9110 §8.3.1.
    """
    if content_type is None or content_type.strip() == "":
        return ""
    match = _MEDIA_TYPE.fullmatch(content_type.strip())
    if match is None:
        raise ValueError("Content-Type is not a well-formed media type")
    return match.group(1).lower()


def is_json(content_type: str | None) -> bool:
    """Whether a `Content-Type` value says the body is JSON: `application/json`, or any type with
    the `+json` suffix; a malformed value says nothing, so it is not JSON."""
    try:
        kind = media_type(content_type)
    except ValueError:
        return False
    return kind == JSON_TYPE or kind.endswith(JSON_SUFFIX)


_PARAMETER = re.compile(rf";[ \t]*({_TOKEN})=({_TOKEN}|{_QUOTED})")


def text_encoding(content_type: str | None, default: str = "utf-8") -> str:
    """The codec to decode a text body of `content_type` with: its `charset` (RFC 9110
    §8.3.2) when Python knows it as a text encoding, else `default` (an unknown name, or a
    bytes-to-bytes codec such as `hex`, which `bytes.decode` refuses with `LookupError`)."""
    name = charset(content_type or "")
    if name is None:
        return default
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return default
    # What `bytes.decode` checks: a codec of bytes to bytes is no text encoding.
    return name if codec._is_text_encoding else default


def charset(content_type: str) -> str | None:
    """The lower-cased `charset` parameter of a well-formed `Content-Type` (see `media_type`),
    unquoted; None when it has none."""
    for name, value in _PARAMETER.findall(content_type):
        if name.lower() == "charset":
            unquoted = value[1:-1] if value.startswith('"') else value
            return str(unquoted).lower()
    return None
