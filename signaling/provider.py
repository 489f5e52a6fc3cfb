"""HTTP client for the provider's call endpoints: create a call, hang it up.

One pooled `httpx.AsyncClient` per provider. Errors become typed exceptions that carry the
provider's status and message, never the request headers (which hold the API key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from signaling.ids import CallId
from signaling.location import LocationError, parse_call_id
from signaling.redaction import redact


class ProviderError(Exception):
    """The provider could not do what we asked."""

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class ProviderRejected(ProviderError):
    """The provider answered with an error status (4xx/5xx)."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached (connection refused, reset, DNS)."""


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""


class ProviderBadResponse(ProviderError):
    """The provider answered 2xx with something we cannot use (bad body or Location)."""


class CallNotFound(ProviderRejected):
    """The provider does not know the call (already ended or never existed)."""


@dataclass(frozen=True, slots=True)
class CreatedCall:
    """What the provider answered to a call creation."""

    answer_sdp: str
    call_id: CallId


def _error_message(response: httpx.Response, secret: str | None) -> tuple[str, str | None]:
    """The provider's own error message and code, from its JSON error body when it has one.

    A provider that echoes our key back in an error must not make us pass it on.
    """
    message, code = _raw_error_message(response)
    secrets = (secret,) if secret else ()
    return redact(message, secrets), (redact(code, secrets) if code else code)


def _raw_error_message(response: httpx.Response) -> tuple[str, str | None]:
    text = response.text[:2000]
    try:
        body: Any = json.loads(text)
    except ValueError:
        return (text.strip() or response.reason_phrase or "no error message"), None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        message = err.get("message")
        code = err.get("code")
        return (
            str(message) if message else response.reason_phrase or "error",
            str(code) if code else None,
        )
    return text.strip(), None


class ProviderClient:
    """Creates and hangs up calls at an OpenAI-compatible realtime provider."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"provider timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"provider unreachable ({type(exc).__name__})") from None

    async def create_call(self, offer_sdp: str, session: dict[str, Any] | None) -> CreatedCall:
        """POST the offer (and the session, as multipart) and return the answer and call id."""
        if session is None:
            response = await self._send(
                "POST",
                "/v1/realtime/calls",
                content=offer_sdp.encode(),
                headers={"Content-Type": "application/sdp", "Accept": "application/sdp"},
            )
        else:
            files = {
                "sdp": (None, offer_sdp.encode(), "application/sdp"),
                "session": (None, json.dumps(session).encode(), "application/json"),
            }
            response = await self._send("POST", "/v1/realtime/calls", files=files)
        if response.status_code not in (200, 201):
            message, code = _error_message(response, self._api_key)
            raise ProviderRejected(message, status=response.status_code, code=code)
        try:
            answer = response.content.decode("utf-8")
        except UnicodeDecodeError:
            raise ProviderBadResponse(
                "provider's SDP answer is not UTF-8", status=response.status_code
            ) from None
        if not answer.strip():
            raise ProviderBadResponse("provider's SDP answer is empty", status=response.status_code)
        raw_location = response.headers.get_list("location")
        location = raw_location[0] if raw_location else None
        try:
            call_id = parse_call_id(location)
        except LocationError as exc:
            raise ProviderBadResponse(str(exc), status=response.status_code) from None
        return CreatedCall(answer_sdp=answer, call_id=call_id)

    async def hangup(self, call_id: CallId) -> None:
        """Ask the provider to end the call; `CallNotFound` if it does not know it."""
        response = await self._send("POST", f"/v1/realtime/calls/{call_id}/hangup")
        if response.status_code == 404:
            message, code = _error_message(response, self._api_key)
            raise CallNotFound(message, status=404, code=code)
        if response.status_code >= 400:
            message, code = _error_message(response, self._api_key)
            raise ProviderRejected(message, status=response.status_code, code=code)

    async def probe(self) -> bool:
        """Whether the provider answers HTTP at all (any status counts as reachable)."""
        try:
            await self._client.get("/v1/realtime/calls", timeout=2.0)
        except httpx.HTTPError:
            return False
        return True
