"""The `Host` header field a request must carry (RFC 9112 §3.2), checked before the app sees it.

A server must answer 400 to an HTTP/1.1 request without `Host`, and to any request with more
than one `Host` field line or with a value that is not `uri-host [ ":" port ]` (RFC 9110 §7.2,
https://www.rfc-editor.org/rfc/rfc9110#section-7.2): an RFC 3986 host (§3.2.2: a registered
name, an IPv4 address, or an IP literal in brackets) and a port of digits (§3.2.3).
"""

from __future__ import annotations

import ipaddress
import re

NO_HOST_DETAIL = "an HTTP/1.1 request must have a Host header field"
HOSTS_DETAIL = "the request has more than one Host header field"
BAD_HOST_DETAIL = "the Host header field is not a host and an optional port"

# RFC 3986 §3.2.2: reg-name (which IPv4address is a case of) or an IP-literal, whose characters
# (an IPv6 address's or an IPvFuture's) are all unreserved, sub-delims or ":"; then §3.2.3's port.
_HOST = re.compile(
    rb"(?:\[(?P<literal>[A-Za-z0-9\-._~!$&'()*+,;=:]*)\]"
    rb"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)"
    rb"(?::[0-9]*)?"
)
_IP_FUTURE = re.compile(rb"[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+")

# RFC 9112 §5.1: whitespace after a field value is not part of it; httptools leaves it there.
_OWS = b" \t"


def host_fault(http_version: str, hosts: list[bytes]) -> str | None:
    """Why a request of `http_version` with these `Host` field values is refused (RFC 9112
    §3.2), or None when it is not."""
    if not hosts:
        # HTTP/1.0 had no Host field (RFC 1945): only an HTTP/1.1 request must have one.
        return NO_HOST_DETAIL if http_version == "1.1" else None
    if len(hosts) > 1:
        return HOSTS_DETAIL
    return None if valid_host(hosts[0].rstrip(_OWS)) else BAD_HOST_DETAIL


def valid_host(value: bytes) -> bool:
    """Whether `value` is `uri-host [ ":" port ]` (RFC 9110 §7.2); an empty host is one (RFC
    9112 §3.2: a client sends an empty `Host` when the target URI has no authority)."""
    match = _HOST.fullmatch(value)
    if match is None:
        return False
    literal: bytes | None = match["literal"]
    if literal is None or _IP_FUTURE.fullmatch(literal):
        return True
    try:
        ipaddress.IPv6Address(literal.decode("ascii"))
    except ValueError:
        return False
    return True
