"""Reading request bodies with a size limit enforced before (and while) they are read."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP

from fastapi import Request

from service.api.problems import Problem


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed `limit` bytes.

    A declared Content-Length over the limit is refused without reading anything; a chunked
    body is refused at the first chunk that crosses the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Problem(400, "Content-Length is not a number", kind="bad-length")
        if int(declared) > limit:
            raise Problem(
                413, f"body of {declared} bytes exceeds the {limit}-byte limit", kind="too-large"
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"body exceeds the {limit}-byte limit", kind="too-large")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_form(content_type: str, body: bytes) -> dict[str, bytes]:
    """The parts of a `multipart/form-data` body by field name; 400 when it is not one."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise Problem(400, "malformed multipart body", kind="bad-multipart")
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise Problem(400, "a multipart part has no field name", kind="bad-multipart")
        if name in parts:
            raise Problem(400, f"multipart field {name!r} appears twice", kind="bad-multipart")
        payload = part.get_payload(decode=True)
        parts[name] = payload if isinstance(payload, bytes) else b""
    return parts
