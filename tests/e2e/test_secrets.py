"""The provider API key never reaches a response, an error, the schema, or a log line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import httpx
import pytest

from media.peer import CallClient, DialError
from service.logs import configure_logging
from tests.e2e.conftest import Serve, StartService
from tests.e2e.faulty_provider import FaultyProvider
from tests.unit.sdp_samples import AIORTC_OFFER

KEY = "sk-live-7fQ2secretKEYvalue9XyZ"


@pytest.fixture
def debug_logs() -> Iterator[io.StringIO]:
    """Our JSON logging at DEBUG, with the chattiest libraries turned all the way up."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    configure_logging("DEBUG", "json", [KEY], stream=out)
    for name in ("websockets", "websockets.client", "httpx", "httpcore", "callbridge"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield out
    root.handlers[:], root.level = saved


def _dump(response: httpx.Response) -> str:
    return f"{response.status_code} {dict(response.headers)} {response.text}"


async def test_key_appears_nowhere_in_a_whole_call_lifecycle(
    start_service: StartService,
    serve: Serve,
    debug_logs: io.StringIO,
) -> None:
    seen: list[str] = []
    service = await start_service(api_key=KEY)
    async with httpx.AsyncClient(base_url=service.url) as client:
        async with CallClient(f"{service.url}/v1/calls") as call:
            assert call.location is not None
            message = await client.post(
                f"{call.location}/messages",
                json={"text": "ask the background agent what is 1 plus 1"},
            )
            seen.append(_dump(message))
            for path in (call.location, "/v1/calls", "/readyz", "/metrics", "/openapi.json"):
                seen.append(_dump(await client.get(path)))
            seen.append(_dump(await client.delete(call.location)))
        seen.append(_dump(await client.post("/v1/calls", content=b"junk", headers={})))
        seen.append(
            _dump(
                await client.post(
                    "/v1/calls", content=b"v=0\r\n", headers={"content-type": "application/sdp"}
                )
            )
        )

    faulty = FaultyProvider(script=["echo_key", "error500", "no_location"])
    broken = await start_service(
        provider="openai", provider_url=await serve(faulty.app()), api_key=KEY
    )
    async with httpx.AsyncClient(base_url=broken.url) as client:
        for _ in range(3):
            response = await client.post(
                "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
            )
            assert response.status_code == 502
            seen.append(_dump(response))
    with pytest.raises(DialError) as failure:
        async with CallClient(f"{broken.url}/v1/calls/../nope"):
            pass
    seen.append(str(failure.value))

    logs = debug_logs.getvalue()
    assert "Incorrect API key" in " ".join(seen), "the echoing provider path was exercised"
    assert '"level": "debug"' in logs, "debug logging was really on"
    assert KEY not in logs
    for text in seen:
        assert KEY not in text
