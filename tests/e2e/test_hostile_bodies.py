"""Hostile request bodies get 400 or 413 problem+json, and the service serves others meanwhile."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import StartService
from tests.e2e.hostile import RawConnection, assert_problem, healthy, request_head
from tests.unit.sdp_samples import AIORTC_OFFER

BOUNDARY = "hostileboundary"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def _many_parameters(count: int) -> bytes:
    # The shape that froze the standard library's email parser: one Content-Disposition line
    # with tens of thousands of parameters.
    params = ";a=b" * count
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=sdp{params}\r\n\r\n"
        f"{AIORTC_OFFER}\r\n--{BOUNDARY}--\r\n"
    ).encode()


async def test_multipart_header_with_thousands_of_parameters_is_refused_while_healthz_answers(
    start_service: StartService,
) -> None:
    service = await start_service()
    body = _many_parameters(27_000)
    head = request_head(
        "POST", "/v1/calls", {"Content-Type": FORM_TYPE, "Content-Length": str(len(body))}
    )
    connection = await RawConnection.open(service.url)
    try:
        # The first part of the body is in the server's hands, the header line not yet over.
        await connection.send(head + body[:600])
        assert await healthy(service.url)
        await connection.send(body[600:2400])
        response = await connection.response()
    finally:
        await connection.close()
    assert_problem(response.status, response.headers["content-type"], response.json(), 400)
    assert service.manager.active() == []
    assert await healthy(service.url)


async def test_multipart_body_with_thousands_of_parts_is_refused_as_too_large(
    start_service: StartService,
) -> None:
    service = await start_service()
    parts = "".join(
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=x{i}\r\n\r\nx\r\n"
        for i in range(2000)
    )
    body = (parts + f"--{BOUNDARY}--\r\n").encode()
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post("/v1/calls", content=body, headers={"content-type": FORM_TYPE})
        assert_problem(response.status_code, response.headers["content-type"], response.json(), 413)
        assert (await client.get("/healthz")).status_code == 200


async def test_multipart_body_without_its_closing_boundary_is_refused(
    start_service: StartService,
) -> None:
    service = await start_service()
    body = f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=sdp\r\n\r\n{AIORTC_OFFER}"
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post("/v1/calls", content=body, headers={"content-type": FORM_TYPE})
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 400)


async def test_multipart_content_type_with_too_many_parameters_is_refused(
    start_service: StartService,
) -> None:
    service = await start_service()
    content_type = FORM_TYPE + "".join(f"; p{i}=v" for i in range(100))
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=sdp\r\n\r\nx\r\n--{BOUNDARY}--\r\n"
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls", content=body, headers={"content-type": content_type}
        )
    assert_problem(response.status_code, response.headers["content-type"], response.json(), 400)


async def test_well_formed_multipart_offer_still_starts_a_call(
    start_service: StartService,
) -> None:
    service = await start_service(local_media=False)
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls",
            files={
                "sdp": (None, AIORTC_OFFER.encode(), "application/sdp"),
                "session": (None, b'{"voice": "marin"}', "application/json"),
            },
        )
        assert response.status_code == 201, response.text
        await client.delete(response.headers["location"])
