"""HTTP client for the provider's call endpoints: create a call, hang it up, and answer, refuse
or transfer a phone call (https://platform.openai.com/docs/api-reference/realtime-calls).

One pooled `aiohttp.ClientSession` per provider (aiohttp rather than httpx: a call start's
provider POST costs about a quarter of the CPU). Every request has a total deadline (connect,
send and the whole answer), not a per-read timeout, and an answer-size cap, so a provider
trickling or flooding its answer holds nothing for longer than the deadline. Errors become typed
exceptions that carry the provider's status and message, never the request headers (which hold
the API key). Everything the provider sends that we pass on (the SDP answer, error messages,
what a bad `Location` said) is redacted first (`signaling.redaction`).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from multidict import CIMultiDictProxy
from yarl import URL

from signaling.credentials import Credentials, CredentialsError
from signaling.ids import CallId
from signaling.json_text import json_bytes
from signaling.location import LocationError, parse_call_id
from signaling.redaction import redact, redact_head
from signaling.tls import trust_anchors


class ProviderError(Exception):
    """The provider could not do what we asked."""

    status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
    ):
        """`message` may be shown to our clients; `detail` (the transport's own words,
        redacted) is for our logs only: it can name the provider's host and address."""
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.detail = detail


class ProviderRejected(ProviderError):
    """The provider answered with an error status (4xx/5xx)."""


class ProviderRefusedOffer(ProviderRejected):
    """The provider refused the SDP offer itself (a 4xx naming the offer or the SDP)."""


class ProviderRateLimited(ProviderRejected):
    """The provider answered 429; `retry_after_s` is its `Retry-After`, when usable."""

    def __init__(self, message: str, *, code: str | None, retry_after_s: int | None) -> None:
        super().__init__(message, status=429, code=code)
        self.retry_after_s = retry_after_s


class ProviderUnavailable(ProviderError):
    """The provider could not be reached (connection refused, reset, DNS)."""


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""


class ProviderBadResponse(ProviderError):
    """The provider answered 2xx with something we cannot use (bad body or Location)."""


class CallNotFound(ProviderRejected):
    """The provider does not know the call (already ended or never existed)."""


# A provider's `Retry-After` is believed up to this long; past it, the caller is told this.
MAX_RETRY_AFTER_S = 3600
_DELAY_SECONDS = re.compile(r"[0-9]{1,10}")
# Error codes and words by which a provider's 4xx says the offer itself is unusable (OpenAI
# answers 400 `invalid_offer`; others name the SDP in the message).
_OFFER_CODES = frozenset({"invalid_offer", "invalid_sdp", "sdp_error"})
_OFFER_WORDS = re.compile(r"\b(?:sdp|offer)\b", re.IGNORECASE)
_OUR_CREDENTIALS = frozenset({401, 403})
# The start of a provider's error body that is read for its message (redacted first).
_ERROR_TEXT_CHARS = 2000
# The start of a transport error's own words kept for the logs.
_DETAIL_CHARS = 500
MAX_CONNECTIONS = 200
"""Provider connections open at once; requests past it wait for one (within their deadline)."""
KEEPALIVE_S = 4.0
"""How long an idle pooled connection is kept: under uvicorn's own 5 s, so that a request is
never sent on a connection the server is closing at that moment (aiohttp does not retry a
POST, and a call creation must not be sent twice)."""


def retry_after_seconds(value: str | None, now: float) -> int | None:
    """Seconds to wait per a `Retry-After` value (RFC 9110 §10.2.3), capped; None if unusable.

    `value` is delay-seconds or an HTTP-date; `now` is the current POSIX time.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return min(int(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0, min(round(when - now), MAX_RETRY_AFTER_S))


def _refuses_offer(status: int, code: str | None, message: str) -> bool:
    if not 400 <= status < 500 or status in _OUR_CREDENTIALS or status in (404, 429):
        return False
    return code in _OFFER_CODES or _OFFER_WORDS.search(message) is not None


def _env_proxy(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment names for `url` (`HTTPS_PROXY`, `NO_PROXY`, ...), and its
    credentials: aiohttp's `trust_env` lookup, made once rather than on every request."""
    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None


def _form(fields: dict[str, tuple[bytes, str]]) -> tuple[bytes, str]:
    """A `multipart/form-data` body (RFC 7578) of plain fields (no filename), each
    `name: (value, type)`, and its content type; names must be RFC 9110 tokens. One buffer: written
    part by part, a request leaves in many small segments. The framing is aiohttp's
    `MultipartWriter`'s, built here in a sixteenth of its time; the boundary is random, 128 bits."""
    boundary = uuid.uuid4().hex.encode()
    body = bytearray()
    for name, (value, content_type) in fields.items():
        body += b'--%b\r\nContent-Type: %b\r\nContent-Disposition: form-data; name="%b"\r\n\r\n' % (
            boundary,
            content_type.encode(),
            name.encode(),
        )
        body += value
        body += b"\r\n"
    body += b"--%b--\r\n" % boundary
    return bytes(body), f"multipart/form-data; boundary={boundary.decode()}"


def call_creation_form(offer_sdp: str, session: dict[str, Any]) -> tuple[bytes, str]:
    """The body of a `POST /v1/realtime/calls` that carries a session
    (https://platform.openai.com/docs/guides/realtime-webrtc): the multipart parts `sdp` (the
    offer) and `session` (JSON), and its content type."""
    return _form(
        {
            "sdp": (offer_sdp.encode(), "application/sdp"),
            "session": (json_bytes(session), "application/json"),
        }
    )


@dataclass(frozen=True, slots=True)
class _Answer:
    """The provider's whole answer to one request."""

    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    content: bytes
    charset: str | None

    @property
    def text(self) -> str:
        """The body decoded by its declared charset (UTF-8 by default), bad bytes replaced."""
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class CreatedCall:
    """What the provider answered to a call creation."""

    answer_sdp: str
    call_id: CallId


def _error_message(response: _Answer, secrets: tuple[str, ...]) -> tuple[str, str | None]:
    """The provider's own error message and code, from its JSON error body when it has one.

    A provider that echoes our key back in an error must not make us pass it on.
    """
    text = redact_head(response.text, _ERROR_TEXT_CHARS, secrets)
    message, code = _raw_error_message(text, response.reason)
    return redact(message, secrets), (redact(code, secrets) if code else code)


def _raw_error_message(text: str, reason: str) -> tuple[str, str | None]:
    try:
        body: Any = json.loads(text)
    except (ValueError, RecursionError):
        return (text.strip() or reason or "no error message"), None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        message = err.get("message")
        code = err.get("code")
        return (
            str(message) if message else reason or "error",
            str(code) if code else None,
        )
    return text.strip(), None


class ProviderClient:
    """Creates and hangs up calls at an OpenAI-compatible realtime provider.

    Construct it inside the event loop that uses it (the pool belongs to that loop).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        max_response_bytes: int = 1 << 20,
        credentials: Credentials | None = None,
        create_query: dict[str, str] | None = None,
    ) -> None:
        """`credentials` replace the bearer `api_key` header (Azure: `api-key` or Entra ID);
        `api_key` is still redacted from error messages. `create_query` is added to the call
        creation URL (Azure: `webrtcfilter=on`)."""
        self.base_url = base_url.rstrip("/")
        self._secrets = (api_key,) if api_key else ()
        self._credentials = credentials
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._create_query = create_query or {}
        self._deadline_s = timeout_s
        self._max_response_bytes = max_response_bytes
        proxy, proxy_auth = _env_proxy(self.base_url)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=MAX_CONNECTIONS,
                keepalive_timeout=KEEPALIVE_S,
                ssl=trust_anchors() if self.base_url.startswith("https:") else True,
            ),
            # The total deadline is ours (`_send`); only the TCP connect has its own.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s),
            # The environment's proxy, read once as httpx did.
            proxy=proxy,
            proxy_auth=proxy_auth,
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._session.close()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        deadline_s: float | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> _Answer:
        """The provider's whole answer to one request, within the total deadline.

        Raises `ProviderTimeout` past the deadline, `ProviderUnavailable` on a transport error
        or when no credentials could be had, `ProviderBadResponse` for an answer over the size
        cap.
        """
        deadline_s = self._deadline_s if deadline_s is None else deadline_s
        try:
            async with asyncio.timeout(deadline_s):
                sent = (
                    await self._credentials.headers()
                    if self._credentials is not None
                    else self._headers
                )
                if headers:
                    sent = {**sent, **headers}
                # A redirect is not followed: it would carry our credentials to another host.
                async with self._session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    headers=sent,
                    data=data,
                    allow_redirects=False,
                ) as response:
                    content = await self._read_capped(response)
                    return _Answer(
                        response.status,
                        response.reason or "",
                        response.headers,
                        content,
                        response.charset,
                    )
        except aiohttp.ServerTimeoutError as exc:
            raise ProviderTimeout(
                f"provider timed out ({type(exc).__name__})", detail=self._detail(exc)
            ) from None
        except TimeoutError:
            raise ProviderTimeout(f"provider did not answer within {deadline_s} s") from None
        except aiohttp.ClientError as exc:
            raise ProviderUnavailable(
                f"provider unreachable ({type(exc).__name__})", detail=self._detail(exc)
            ) from None
        except CredentialsError as exc:
            raise ProviderUnavailable(f"no provider credentials: {exc}") from None
        except ValueError as exc:
            # aiohttp refusing what we would send (a header with a control character, say).
            raise ProviderUnavailable(f"request not sent: {type(exc).__name__}") from None

    def _detail(self, exc: Exception) -> str:
        return redact_head(str(exc), _DETAIL_CHARS, self._secrets)

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self._max_response_bytes:
                raise ProviderBadResponse(
                    f"provider's answer exceeds {self._max_response_bytes} bytes",
                    status=response.status,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _rejection(self, response: _Answer) -> ProviderRejected:
        message, code = _error_message(response, self._secrets)
        status = response.status
        if status == 429:
            retry_after = retry_after_seconds(response.headers.get("retry-after"), time.time())
            return ProviderRateLimited(message, code=code, retry_after_s=retry_after)
        if _refuses_offer(status, code, message):
            return ProviderRefusedOffer(message, status=status, code=code)
        return ProviderRejected(message, status=status, code=code)

    async def create_call(self, offer_sdp: str, session: dict[str, Any] | None) -> CreatedCall:
        """POST the offer (and the session, as multipart) and return the answer and call id.

        Raises `ProviderRefusedOffer` when the provider's 4xx says the offer is unusable,
        `ProviderRateLimited` on 429, `ProviderRejected` for any other error status, and the
        errors of `_send`.
        """
        if session is None:
            response = await self._send(
                "POST",
                "/v1/realtime/calls",
                params=self._create_query,
                data=offer_sdp.encode(),
                headers={"Content-Type": "application/sdp", "Accept": "application/sdp"},
            )
        else:
            body, content_type = call_creation_form(offer_sdp, session)
            response = await self._send(
                "POST",
                "/v1/realtime/calls",
                params=self._create_query,
                data=body,
                headers={"Content-Type": content_type},
            )
        if response.status not in (200, 201):
            raise self._rejection(response)
        try:
            answer = response.content.decode("utf-8")
        except UnicodeDecodeError:
            raise ProviderBadResponse(
                "provider's SDP answer is not UTF-8", status=response.status
            ) from None
        if not answer.strip():
            raise ProviderBadResponse("provider's SDP answer is empty", status=response.status)
        raw_location = response.headers.getall("location", [])
        location = raw_location[0] if raw_location else None
        try:
            # Redacted before it is parsed: an error quoting it cuts it, and a secret crossing
            # that cut would no longer be recognised. A call id holding a credential is thereby
            # refused too (`[REDACTED]` is no call id): it would be served and logged everywhere.
            call_id = parse_call_id(
                redact(location, self._secrets) if location is not None else None
            )
        except LocationError as exc:
            raise ProviderBadResponse(
                redact(str(exc), self._secrets), status=response.status
            ) from None
        return CreatedCall(answer_sdp=redact(answer, self._secrets), call_id=call_id)

    async def hangup(self, call_id: CallId) -> None:
        """Ask the provider to end the call; `CallNotFound` if it does not know it."""
        self._check_control(await self._send("POST", f"/v1/realtime/calls/{call_id}/hangup"))

    async def accept(self, call_id: CallId, session: dict[str, Any]) -> None:
        """Answer a ringing phone call with a GA session object (`type: "realtime"`, model, …).

        `CallNotFound` when the call has gone (it rang out or the caller hung up).
        """
        await self._call_control(call_id, "accept", session)

    async def reject(self, call_id: CallId, status_code: int | None = None) -> None:
        """Refuse a ringing phone call with a SIP status (the provider's default: 603 Decline)."""
        body = None if status_code is None else {"status_code": status_code}
        await self._call_control(call_id, "reject", body)

    async def refer(self, call_id: CallId, target_uri: str) -> None:
        """Transfer a phone call with a SIP REFER to a `tel:` or `sip:` URI."""
        await self._call_control(call_id, "refer", {"target_uri": target_uri})

    async def _call_control(
        self, call_id: CallId, action: str, body: dict[str, Any] | None
    ) -> None:
        headers = {"Accept": "*/*"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        response = await self._send(
            "POST", f"/v1/realtime/calls/{call_id}/{action}", headers=headers, data=data
        )
        self._check_control(response)

    def _check_control(self, response: _Answer) -> None:
        """Raise unless a call-control answer is a success: `CallNotFound` for 404 or 410 (the
        call has ended), the rejection for anything else that is not 2xx (a redirect too)."""
        if response.status in (404, 410):
            message, code = _error_message(response, self._secrets)
            raise CallNotFound(message, status=response.status, code=code)
        if not 200 <= response.status < 300:
            raise self._rejection(response)

    async def probe(self) -> bool:
        """Whether the provider answers HTTP at all (any status counts as reachable)."""
        try:
            await self._send("GET", "/v1/realtime/calls", deadline_s=min(2.0, self._deadline_s))
        except ProviderError as exc:
            return isinstance(exc, ProviderBadResponse)
        return True
