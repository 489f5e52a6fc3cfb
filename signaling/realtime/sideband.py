"""The sideband: a WebSocket to `{provider}/v1/realtime?call_id=...` (thin I/O shell).

It only moves text frames. What they mean is `CallState`'s business; when to rejoin is the
caller's, helped by `join()`, which retries with exponential backoff and full jitter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from signaling.credentials import Credentials, CredentialsError
from signaling.ids import CallId

# websockets logs handshake headers at debug level; our logging setup redacts the key, and
# keeping this logger at INFO means the Authorization header is never even formatted.
_ws_log = logging.getLogger("callbridge.sideband.ws")
_ws_log.setLevel(logging.INFO)


class SidebandError(Exception):
    """The sideband could not be joined."""


class SidebandGone(SidebandError):
    """The provider says the call does not exist any more (404/410 on join)."""


class SidebandRejected(SidebandError):
    """The provider refused our credentials (401/403): retrying cannot help."""


class SidebandUnavailable(SidebandError):
    """Every join attempt failed."""


def sideband_url(provider_base_url: str, call_id: CallId) -> str:
    """`https://host[/prefix]` -> `wss://host[/prefix]/v1/realtime?call_id=<id>` (no model)."""
    parts = urlsplit(provider_base_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit(
        (scheme, parts.netloc, path + "/realtime", urlencode({"call_id": call_id}), "")
    )


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Bounded exponential backoff with full jitter."""

    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delay(self, attempt: int, unit: float) -> float:
        """Delay before retry number `attempt` (1-based), with `unit` a random number in [0, 1)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + unit / 2)


class Sideband:
    """One call's sideband connection; `join()` again after it closes to rejoin."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        policy: ReconnectPolicy = ReconnectPolicy(),
        ping_interval_s: float = 20.0,
        open_timeout_s: float = 10.0,
        rng: random.Random | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        """`credentials`, when given, replace the bearer `api_key` header and are asked for
        headers at every join (an Entra ID token may have been refreshed meanwhile)."""
        self.url = url
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._credentials = credentials
        self._policy = policy
        self._ping_interval_s = ping_interval_s
        self._open_timeout_s = open_timeout_s
        self._rng = rng or random.Random()
        self._ws: ClientConnection | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""

    @property
    def connected(self) -> bool:
        """Whether a connection is open."""
        return self._ws is not None

    async def join(self) -> None:
        """Connect, retrying per the policy; raise a `SidebandError` subclass when it cannot."""
        last = "no attempt made"
        for attempt in range(1, self._policy.max_attempts + 1):
            try:
                headers = self._headers
                if self._credentials is not None:
                    headers = await self._credentials.headers()
                self._ws = await connect(
                    self.url,
                    additional_headers=headers,
                    ping_interval=self._ping_interval_s,
                    ping_timeout=self._ping_interval_s,
                    open_timeout=self._open_timeout_s,
                    max_size=16 * 1024 * 1024,
                    logger=_ws_log,
                    user_agent_header="callbridge",
                )
                self.close_code, self.close_reason = None, ""
                return
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (404, 410):
                    raise SidebandGone(f"provider answered {status}: the call is over") from None
                if status in (401, 403):
                    raise SidebandRejected(f"provider refused the sideband: {status}") from None
                last = f"HTTP {status}"
            except (OSError, TimeoutError, InvalidHandshake, CredentialsError) as exc:
                last = type(exc).__name__
            if attempt < self._policy.max_attempts:
                await asyncio.sleep(self._policy.delay(attempt, self._rng.random()))
        raise SidebandUnavailable(f"sideband join failed {self._policy.max_attempts} times: {last}")

    async def receive(self) -> str | bytes | None:
        """The next frame, or None once the connection has closed."""
        ws = self._ws
        if ws is None:
            return None
        try:
            return await ws.recv()
        except ConnectionClosed as exc:
            self._closed(exc)
            return None

    async def send(self, payload: dict[str, Any]) -> bool:
        """Send one client event; False when there is no open connection to send it on."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps(payload, separators=(",", ":")))
        except ConnectionClosed as exc:
            self._closed(exc)
            return False
        return True

    def _closed(self, exc: ConnectionClosed) -> None:
        rcvd = exc.rcvd
        self.close_code = rcvd.code if rcvd else None
        self.close_reason = rcvd.reason if rcvd else ""
        self._ws = None

    async def close(self) -> None:
        """Close the connection if open."""
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
