"""uvicorn's HTTP/1.1 protocol (httptools), as `callbridge serve` runs it, with three changes.

- **Parser refusals are problem+json.** A request that httptools cannot parse (a negative
  `Content-Length`, a malformed request line or header, a bad chunk size) never reaches the
  app: uvicorn answers it itself, as a `text/plain` 400, and closes the connection
  (`send_400_response` in
  https://github.com/encode/uvicorn/blob/master/uvicorn/protocols/http/httptools_impl.py).
  Here that answer has an RFC 9457 body, as our own 400s have.
- **A lost connection reaches every request in flight on it.** When a client pipelines a
  second request behind one still being served (RFC 9112 §9.3.2), uvicorn makes the second the
  connection's current request, and on a lost connection tells only that one. A call start
  waiting on the provider then never learns that its client left, and the call it creates
  would stay up with nobody to take it. Here every request still unanswered is told.
- **An app can learn that its response was dropped.** uvicorn's `send` returns without a word
  when the connection was lost before the response was written, which can be long after the
  request was read when a client stops reading (RFC 9112 §9.3.2 pipelining, TCP back-pressure).
  Each request's scope carries `ANSWER_UNSENT` to ask.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from service.api.disconnect import ANSWER_UNSENT
from service.api.problems import PROBLEM_JSON, TITLES

UNPARSABLE_DETAIL = "the request is not valid HTTP/1.1"


def _dropped(held: weakref.ref[RequestResponseCycle]) -> bool:
    cycle = held()
    return cycle is not None and cycle.disconnected


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the three changes in the module's doc."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # Requests overtaken by a pipelined one and not yet answered: at most the pipeline's
        # depth, which uvicorn keeps short by not reading while one is pending.
        self._overtaken: list[RequestResponseCycle] = []

    def on_headers_complete(self) -> None:
        current = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not current:
            # Weakly: the cycle holds its scope, and a cycle back would leave every request to
            # the cyclic collector.
            held = weakref.ref(cycle)
            extensions = cycle.scope.setdefault("extensions", {})
            extensions[ANSWER_UNSENT] = {"unsent": lambda: _dropped(held)}
        if current is not None and current is not cycle:
            self._overtaken = [c for c in self._overtaken if not c.response_complete]
            if not current.response_complete:
                self._overtaken.append(current)

    def connection_lost(self, exc: Exception | None) -> None:
        for cycle in self._overtaken:
            if not cycle.response_complete:
                cycle.disconnected = True
            cycle.message_event.set()
        self._overtaken = []
        super().connection_lost(exc)

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
