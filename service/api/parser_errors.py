"""Requests uvicorn's HTTP parser refuses, answered as problem+json like every other error.

A request that httptools cannot parse (a negative `Content-Length`, a malformed request line or
header, a bad chunk size) never reaches the app: uvicorn answers it itself, as a `text/plain`
400, and closes the connection (`send_400_response` in
https://github.com/encode/uvicorn/blob/master/uvicorn/protocols/http/httptools_impl.py). This
protocol gives that answer an RFC 9457 body, as our own 400s have.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.api.problems import PROBLEM_JSON, TITLES

UNPARSABLE_DETAIL = "the request is not valid HTTP/1.1"


class ProblemHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with parser refusals as `application/problem+json`."""

    def send_400_response(self, msg: str) -> None:
        problem = {"type": "about:blank", "title": TITLES[400], "status": 400}
        body = orjson.dumps({**problem, "detail": UNPARSABLE_DETAIL})
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
                b"content-length: " + str(len(body)).encode() + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()
