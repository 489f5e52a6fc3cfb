"""Endpoints callbridge calls out to (handoff handlers, SIP routers), served in tests."""

from __future__ import annotations

from fastapi import FastAPI, Request


def recording_endpoint(path: str, answer: dict[str, str]) -> tuple[FastAPI, list[tuple[str, int]]]:
    """An app answering every `POST path` with `answer`, and the list it fills with the client
    address (host, port) of each request, in order: one port means one connection."""
    peers: list[tuple[str, int]] = []
    app = FastAPI()

    @app.post(path)
    async def endpoint(request: Request) -> dict[str, str]:
        assert request.client is not None
        peers.append((request.client.host, request.client.port))
        return answer

    return app, peers
