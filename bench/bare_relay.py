"""A bare call-start relay: the latency floor of `POST /v1/calls` on the libraries callbridge uses.

The same server as `callbridge serve` (uvicorn on uvloop and httptools, no access log) runs a
plain ASGI app with one route: `POST /v1/calls` reads the SDP offer, sends it with the session
in the provider's multipart form (`call_creation_form`, built per request as callbridge does)
over one aiohttp session to `{provider}/v1/realtime/calls`, and answers 201 with the provider's
SDP answer and a `Location` made from the provider's. Nothing else: no offer check, no
authentication, no call record, no sideband. What callbridge adds over this relay is what
callbridge itself does on the way to the 201.

Run by `call_start.py`: `python bench/bare_relay.py --port P --provider URL --api-key K`.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import uvicorn

from signaling.provider import call_creation_form
from signaling.realtime.client_events import SessionConfig, session_payload

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Relay:
    """The ASGI app: `POST /v1/calls` relayed to the provider, 404 for anything else."""

    def __init__(self, provider_url: str, api_key: str, instructions: str) -> None:
        self.calls_url = f"{provider_url}/v1/realtime/calls"
        self.auth = {"Authorization": f"Bearer {api_key}"}
        self.session = session_payload(SessionConfig(instructions=instructions), include_model=True)
        self.http: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http" or (scope["method"], scope["path"]) != ("POST", "/v1/calls"):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        form, form_type = call_creation_form(body.decode(), self.session)
        assert self.http is not None
        async with self.http.post(
            self.calls_url, data=form, headers={**self.auth, "Content-Type": form_type}
        ) as answer:
            sdp = await answer.read()
            call_id = answer.headers.get("Location", "").rsplit("/", 1)[-1]
            status = answer.status
        headers = [(b"content-type", b"application/sdp")]
        if status == 201:
            headers.append((b"location", f"/v1/calls/{call_id}".encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": sdp})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # As callbridge's provider client: idle connections go before uvicorn's 5 s.
                connector = aiohttp.TCPConnector(
                    keepalive_timeout=4, ssl=ssl.create_default_context()
                )
                self.http = aiohttp.ClientSession(connector=connector)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.http is not None:
                    await self.http.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--provider", required=True, help="the provider's base URL")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--instructions", default="")
    args = parser.parse_args()
    relay = Relay(args.provider, args.api_key, args.instructions)
    config = uvicorn.Config(
        relay,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
