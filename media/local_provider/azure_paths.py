"""The stand-in's Azure OpenAI flavor: the API lives under `/openai`, as on
`https://{resource}.openai.azure.com/openai/v1/...`
(https://learn.microsoft.com/azure/ai-foundry/openai/latest).

An ASGI wrapper strips the prefix before routing and answers 404 for `/v1/...` without it, so a
client that forgets the prefix fails as it would against Azure.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from media.local_provider.errors import error_body

AZURE_PREFIX = "/openai"
# The stand-in's own routes, outside the emulated API.
_UNPREFIXED = ("/healthz", "/local/")


class AzurePaths:
    """Routes `/openai/<path>` as `<path>`; refuses the API's paths without the prefix."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(AZURE_PREFIX + "/"):
            inner = path[len(AZURE_PREFIX) :]
            scope = {**scope, "path": inner, "raw_path": inner.encode()}
        elif not path.startswith(_UNPREFIXED):
            await _not_found(scope, send)
            return
        await self._app(scope, receive, send)


async def _not_found(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        # Refused before the handshake completes: the client sees an HTTP 403.
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps(
        error_body("Resource not found (Azure serves this API under /openai).", code="404")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
