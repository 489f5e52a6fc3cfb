"""CORS (https://fetch.spec.whatwg.org/#http-cors-protocol): Starlette's middleware, with the
preflights it refuses answered as every other error here.

Starlette answers a refused preflight `400` with a `text/plain` body ("Disallowed CORS origin");
here the `400` is `application/problem+json` (RFC 9457) whose detail names what was refused and
why. Starlette answers an allowed one `200` with a `text/plain` "OK"; here it is `204` with no
body, as the OpenAPI document declares every `OPTIONS` answer (the Fetch standard takes any
2xx as a preflight's "ok status"). Whether a preflight is refused, and its CORS headers, stay
Starlette's.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from service.api.problems import problem_response

# The answer's own framing, which the problem's body replaces.
_BODY_FIELDS = frozenset({"content-length", "content-type"})


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's `CORSMiddleware`, its allowed preflights answered `204` and its refused
    ones `400` problem+json."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        headers = {k: v for k, v in response.headers.items() if k not in _BODY_FIELDS}
        if response.status_code == 200:
            return Response(status_code=204, headers=headers)
        detail = "the CORS preflight is refused: " + "; ".join(self._refused(request_headers))
        return problem_response(400, detail, kind="cors-refused", headers=headers)

    def _refused(self, request_headers: Headers) -> list[str]:
        """What of the preflight Starlette's checks (in `preflight_response`) refuse."""
        origin = request_headers["origin"]
        method = request_headers["access-control-request-method"]
        refused = []
        if not self.is_allowed_origin(origin):
            refused.append(f"origin {origin} is not allowed")
        if method not in self.allow_methods:
            refused.append(f"method {method} is not allowed")
        asked = request_headers.get("access-control-request-headers")
        if asked is not None and not self.allow_all_headers:
            names = (name.strip() for name in asked.split(","))
            refused += [
                f'header "{name}" is not allowed'
                for name in names
                if name.lower() not in self.allow_headers
            ]
        if (
            request_headers.get("access-control-request-private-network") is not None
            and not self.allow_private_network
        ):
            refused.append("access to a private network is not allowed")
        return refused
