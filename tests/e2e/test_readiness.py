"""`/readyz` under load: anyone may ask it (it needs no token), so what it costs the provider
must not grow with how often it is asked."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI, Request, Response

from tests.e2e.conftest import Serve, StartService

ASKED = 40


def _counting_provider(seen: list[str]) -> FastAPI:
    """A provider that records every request made to it and answers 404 (reachable)."""
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST", "DELETE"])
    async def anything(path: str, request: Request) -> Response:
        seen.append(f"{request.method} /{path}")
        return Response(status_code=404)

    return app


async def test_readiness_checks_asked_together_share_one_provider_probe(
    serve: Serve, start_service: StartService
) -> None:
    seen: list[str] = []
    provider_url = await serve(_counting_provider(seen))
    service = await start_service(provider="openai", provider_url=provider_url)
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        answers = await asyncio.gather(*(client.get("/readyz") for _ in range(ASKED)))
    assert {answer.status_code for answer in answers} == {200}
    assert seen == ["GET /v1/realtime/calls"]
