"""The ICE servers a WHIP client is told to use, and the TURN credentials given with them.

RFC 9725 §4.6 (https://www.rfc-editor.org/rfc/rfc9725#section-4.6): each STUN or TURN server is
one `<uri>; rel="ice-server"` link; a TURN server's link may carry `username`, `credential` and
`credential-type="password"`, a long-term credential (RFC 8489 §9.2,
https://www.rfc-editor.org/rfc/rfc8489#section-9.2) the client puts in its RTCIceServer.

Credentials are static (a TURN server's long-term user) or derived per answer from a secret
shared with the TURN server (`SharedSecret`), then valid no longer than the caller's token lets
it make calls. Everything here is pure: time, the per-answer id and the token's expiry are
passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
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

    def credential(
        self, now: float, user_id: str, not_after: float | None = None
    ) -> TurnCredential:
        """The credential issued at `now` (Unix seconds) to `user_id`: username
        `<expiry>:<user_id>` and password base64(HMAC-SHA1(secret, username)) (draft §2.2).

        The expiry (Unix seconds) is `int(now) + ttl_s`, or `not_after` rounded up when that is
        earlier: the credential then works until `not_after` and not a second longer than
        needed."""
        expiry = int(now) + self.ttl_s
        if not_after is not None:
            expiry = min(expiry, math.ceil(not_after))
        username = f"{expiry}:{user_id}"
        digest = hmac.new(self.secret, username.encode(), hashlib.sha1).digest()
        return TurnCredential(username, base64.b64encode(digest).decode())


@dataclass(frozen=True, slots=True)
class IceServers:
    """The STUN/TURN URIs to advertise (RFC 7064, RFC 7065) and where TURN credentials come
    from: a shared secret, one static credential, or nowhere (None).

    `reach_after_token_s` is how long after a token expires a call it started may still need
    its relay, in seconds: a call accepted just before the token expired is answered within the
    call start's own deadlines and then runs up to the maximum call duration. It bounds the
    derived credentials of callers whose token expires (see `credential`); 0 makes them
    expire with the token.
    """

    urls: tuple[str, ...]
    turn: SharedSecret | TurnCredential | None = None
    reach_after_token_s: float = 0.0

    def credential(
        self, now: float, user_id: str, token_expires_at: int | None = None
    ) -> TurnCredential | None:
        """The TURN credential for one answer (see `SharedSecret.credential`) to a caller whose
        token expires at `token_expires_at` (Unix seconds; None: it does not expire); None when
        no credential is configured.

        A derived credential expires at the earlier of `now` plus its TTL and
        `token_expires_at + reach_after_token_s`. Not at the token's own expiry: a relay is
        authenticated with the credential all through the call, not only when the call starts.
        An allocation made during the call (an ICE restart, a new network path, a broken TURN
        over TCP or TLS connection) authenticates afresh, and coturn checks the username's
        time stamp then (`check_stun_auth` in
        https://github.com/coturn/coturn/blob/master/src/server/ns_turn_server.c asks for the
        key only while its session has none); other TURN servers check it on every request,
        the Refresh that keeps an allocation alive included (RFC 8656 §8,
        https://www.rfc-editor.org/rfc/rfc8656#section-8). Bounded by a 300 s call token, a
        credential would break the relay of any longer call. It need not outlast the last call
        its token may start, either; and that bound is the same for the credential
        of a call start's answer as for an OPTIONS': the TURN server cannot tell one call's
        relay from another's, so either credential serves every call its token may start.

        A static credential is given as it is: it cannot be bounded."""
        if isinstance(self.turn, SharedSecret):
            bound = (
                None if token_expires_at is None else token_expires_at + self.reach_after_token_s
            )
            return self.turn.credential(now, user_id, bound)
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
