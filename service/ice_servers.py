"""The ICE servers a WHIP client is told to use, and the TURN credentials given with them.

RFC 9725 §4.6 (https://www.rfc-editor.org/rfc/rfc9725#section-4.6): each STUN or TURN server is
one `<uri>; rel="ice-server"` link; a TURN server's link may carry `username`, `credential` and
`credential-type="password"`, a long-term credential (RFC 8489 §9.2,
https://www.rfc-editor.org/rfc/rfc8489#section-9.2) the client puts in its RTCIceServer.

Credentials are static (a TURN server's long-term user) or derived per answer from a secret
shared with the TURN server (`SharedSecret`). Everything here is pure: time and the per-answer
id are passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

TURN_SCHEMES = ("turn:", "turns:")


def is_turn(uri: str) -> bool:
    """Whether `uri` names a TURN server (`turn:` or `turns:`, RFC 7065 §3.1; either case)."""
    return uri.lower().startswith(TURN_SCHEMES)


@dataclass(frozen=True, slots=True)
class TurnCredential:
    """A TURN long-term credential: `username`, and `password` (the link's `credential`)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SharedSecret:
    """Time-limited TURN credentials derived from a secret shared with the TURN server: the
    "TURN REST API" scheme (https://datatracker.ietf.org/doc/html/draft-uberti-behave-turn-rest-00
    §2.2), which coturn implements as `use-auth-secret` with `static-auth-secret`
    (https://github.com/coturn/coturn/blob/master/README.turnserver, `--use-auth-secret` and
    "TURN REST API"). The TURN server recomputes the password from the username and refuses to
    authenticate a username whose expiry has passed.

    `secret` is the shared secret's bytes; `ttl_s` how many seconds a credential is valid.
    """

    secret: bytes = field(repr=False)
    ttl_s: int

    def credential(self, now: float, user_id: str) -> TurnCredential:
        """The credential issued at `now` (Unix seconds) to `user_id`: username
        `<expiry>:<user_id>`, expiry `int(now) + ttl_s` in Unix seconds, and password
        base64(HMAC-SHA1(secret, username)) (draft §2.2)."""
        username = f"{int(now) + self.ttl_s}:{user_id}"
        digest = hmac.new(self.secret, username.encode(), hashlib.sha1).digest()
        return TurnCredential(username, base64.b64encode(digest).decode())


@dataclass(frozen=True, slots=True)
class IceServers:
    """The STUN/TURN URIs to advertise (RFC 7064, RFC 7065) and where TURN credentials come
    from: a shared secret, one static credential, or nowhere (None)."""

    urls: tuple[str, ...]
    turn: SharedSecret | TurnCredential | None = None

    def credential(self, now: float, user_id: str) -> TurnCredential | None:
        """The TURN credential for one answer (see `SharedSecret.credential`); None when none
        is configured."""
        if isinstance(self.turn, SharedSecret):
            return self.turn.credential(now, user_id)
        return self.turn

    def link(self, credential: TurnCredential | None) -> str:
        """The `Link` header value: `<uri>; rel="ice-server"` per URI, comma-separated, each
        TURN URI's with `credential`'s parameters when one is given; empty without URIs."""
        params = (
            f"; username={_quoted(credential.username)}"
            f"; credential={_quoted(credential.password)}"
            '; credential-type="password"'
            if credential is not None
            else ""
        )
        return ", ".join(
            f'<{uri}>; rel="ice-server"{params if is_turn(uri) else ""}' for uri in self.urls
        )


def _quoted(value: str) -> str:
    # A link parameter's quoted-string (RFC 8288 §3, RFC 9110 §5.6.4): backslash and double
    # quote are the two characters escaped.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
