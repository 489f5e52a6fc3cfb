"""Multipart call starts are framed as RFC 2046 §5.1.1 says: a preamble before the first
boundary and an epilogue after the last are ignored, and count towards the body's size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.e2e.conftest import StartService
from tests.e2e.hostile import assert_problem, healthy
from tests.unit.sdp_samples import AIORTC_OFFER

BOUNDARY = "framingboundary"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
PREAMBLE = b"This is the preamble.  It is to be ignored,\r\nthough it is a handy place.\r\n"
EPILOGUE = b"\r\nThis is the epilogue.  It is also to be ignored.\r\n"


def _offer_parts() -> bytes:
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=sdp\r\n"
        f"Content-Type: application/sdp\r\n\r\n{AIORTC_OFFER}\r\n"
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=session\r\n"
        f'Content-Type: application/json\r\n\r\n{{"voice": "cedar"}}\r\n'
        f"--{BOUNDARY}--"
    ).encode()


async def _in_pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _started(url: str, body: bytes | AsyncIterator[bytes]) -> dict[str, Any]:
    """POST `body` as a multipart call start, which must be a 201; the call's record, read
    before it is hung up."""
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/v1/calls", content=body, headers={"content-type": FORM_TYPE})
        assert response.status_code == 201, response.text
        record: dict[str, Any] = (await client.get(response.headers["location"])).json()
        await client.delete(response.headers["location"])
    return record


async def test_a_multipart_offer_with_a_preamble_and_an_epilogue_starts_the_call(
    start_service: StartService,
) -> None:
    service = await start_service(local_media=False)
    record = await _started(service.url, PREAMBLE + _offer_parts() + EPILOGUE)
    assert record["session"]["voice"] == "cedar"


async def test_a_preamble_streamed_in_pieces_that_split_the_first_boundary_is_skipped(
    start_service: StartService,
) -> None:
    service = await start_service(local_media=False)
    await _started(service.url, _in_pieces(PREAMBLE + _offer_parts(), 7))


async def test_a_preamble_past_the_body_limit_is_refused_as_too_large(
    start_service: StartService,
) -> None:
    service = await start_service(local_media=False)
    preamble = PREAMBLE * (4 * 1024 * 1024 // len(PREAMBLE))
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls",
            content=_in_pieces(preamble + _offer_parts(), 64 * 1024),
            headers={"content-type": FORM_TYPE},
        )
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 413)
    assert service.manager.active() == []
    assert await healthy(service.url)
