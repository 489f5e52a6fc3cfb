"""uvicorn's HTTP/1.1 protocol (httptools), as `callbridge serve` runs it, with seven changes.

- **Parser refusals are problem+json, after the responses owed before them.** A request that
  httptools cannot parse (a negative `Content-Length`, a malformed request line or header, a
  bad chunk size) never reaches the app: uvicorn answers it itself, as a `text/plain` 400, and
  closes the connection (`send_400_response` in
  https://github.com/encode/uvicorn/blob/master/uvicorn/protocols/http/httptools_impl.py).
  Here that answer has an RFC 9457 body, as our own 400s have, and it is logged as an access
  line (the client's address, the status and why) where uvicorn logged a server WARNING with
  neither; so are this protocol's own refusals below (400, 414, 431, 408). Responses go out in
  order (RFC 9112 §9.3.2): while those owed to requests read before the refused one are not
  complete, reading stops and the refusal waits for them, then is written and the connection
  closed. uvicorn closed at once: a request followed in the same read by bytes that are not
  HTTP got no answer, and a call start so followed was hung up as abandoned by its client.
- **A lost connection reaches every request in flight on it.** When a client pipelines a
  second request behind one still being served (RFC 9112 §9.3.2), uvicorn makes the second the
  connection's current request, and on a lost connection tells only that one. A call start
  waiting on the provider then never learns that its client left, and the call it creates
  would stay up with nobody to take it. Here every request still unanswered is told.
- **An app can learn that its response was dropped.** uvicorn's `send` returns without a word
  when the connection was lost before the response was written, which can be long after the
  request was read when a client stops reading (RFC 9112 §9.3.2 pipelining, TCP back-pressure).
  Each request's scope carries `ANSWER_UNSENT` to ask.
- **The request head is capped** (`max_request_head_bytes`). httptools keeps an unfinished
  header name or value, and uvicorn every finished one, without limit: one 100 MB header was
  served, four unfinished ones held 600 MB. A head (RFC 9112 §2.1: request line and fields)
  past the cap is answered 431 (RFC 6585 §5) and the connection closed. httptools gives no
  byte offsets, so the count is exact only up to one read: the read in which a message begins
  may end the previous message's body, and is left out unless the fields parsed from it pass
  the cap. A head of more than `MAX_HEADER_FIELDS` fields is refused the same way (each field
  is held as Python objects several times its size). Of the requests pipelined behind the
  running one, the first `MAX_PIPELINED` are answered, the last of them with `Connection:
  close` (RFC 9112 §9.6), and the connection is closed after it, unread: a client resends the
  requests left unanswered on another connection (§9.3.2). No status fits them: a 400 would
  call well-formed requests malformed, and a 503 would answer the first of them only, which a
  client then does not resend, as it has its answer. A request target longer than
  `MAX_REQUEST_TARGET_BYTES` is answered 414 (RFC 9112 §3), so that no answer or log line
  echoes one of up to the head cap.
- **A request must arrive in time** (`request_read_timeout_s`). uvicorn waits forever for the
  rest of a head or a body (slowloris), and for the first byte of a new connection. The head
  must be complete within the timeout of its first byte, and the body within the timeout of
  the head's end (RFC 9112 §9.5 lets a server close on a client that takes too long). Past
  it, a request whose response has not started is answered 408 (RFC 9110 §15.5.9) and the
  connection closed; otherwise, and on a new connection that never sent a byte (a browser's
  speculative connection, say: not logged), the connection is closed. The deadline ends with
  the request's last body byte, so a response, however long (a call start waiting on the
  provider, an event stream), is never cut; and it is put off while the server rather than the
  client is the one waiting: uvicorn has stopped reading (a pipelined request waiting its
  turn, a body the app has not read yet) or owes an `Expect: 100-continue` its `100`
  (RFC 9110 §10.1.1). A refusal waiting for the responses before it reads nothing more, so no
  deadline runs then: however long those responses take, they are not cut by a 408.
- **`Host` is checked** (RFC 9112 §3.2). An HTTP/1.1 request without a `Host` field, and any
  request with more than one `Host` field line or with one that is not a host and an optional
  port (`service.api.host_field`), is refused 400 as above, before the app; uvicorn passed
  them on. An HTTP/1.0 request needs none.
- **Only HTTP/1.0 and HTTP/1.1 are served.** httptools also parses an `HTTP/2.0` or `HTTP/0.9`
  request line as if it were HTTP/1 (and other versions as unparsable, 400): such a request is
  answered 505 (RFC 9110 §15.6.6, RFC 9112 §2.3) and the connection closed, before the app.
- **An `Upgrade` is ignored** (RFC 9110 §7.8: a server may ignore it). The app serves no
  WebSocket, and no other protocol: a request asking to switch (`Upgrade: websocket`, `h2c`) is
  served as any other, and what follows it on the connection is read as HTTP/1.1. uvicorn
  handed a WebSocket upgrade to its WebSocket protocol (a `text/plain` 403 or 400, whatever the
  path), and for another upgrade logged a warning and dropped the rest of the read, the body
  included: httptools skips the body of a request that asks to switch
  (`cb_on_headers_complete` in
  https://github.com/MagicStack/httptools/blob/master/httptools/parser/parser.pyx), so here the
  parser reads it after the request's framing fields again. A `CONNECT` asks for a tunnel,
  which is never made: it reaches the app (which refuses it), even with its authority-form
  target (RFC 9112 §3.2.3) that uvicorn refused as unparsable, and the connection is closed
  after the answer, unread, as what the client sends after it may be the tunnel's (RFC 9110
  §9.3.6).
"""

from __future__ import annotations

import asyncio
import enum
import weakref
from asyncio import TimerHandle
from typing import Any, ClassVar, Final, NoReturn

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from service.api.disconnect import ANSWER_UNSENT
from service.api.host_field import host_fault
from service.api.problems import PROBLEM_JSON, TITLES
from service.settings import DEFAULT_MAX_REQUEST_HEAD_BYTES, DEFAULT_REQUEST_READ_TIMEOUT_S

UNPARSABLE_DETAIL = "the request is not valid HTTP/1.1"
HEAD_TOO_LARGE_DETAIL = "the request line and header fields are longer than this server takes"
TARGET_TOO_LONG_DETAIL = "the request target is longer than this server takes"
TIMEOUT_DETAIL = "the request did not arrive in time"
VERSION_DETAIL = "this server speaks HTTP/1.1 (and HTTP/1.0) only"
SERVED_VERSIONS: Final = frozenset({"1.0", "1.1"})


# The fields that frame a request's body (RFC 9112 §6) and say whether the connection persists
# after it (§9.3).
_FRAMING_FIELDS = frozenset({b"content-length", b"transfer-encoding", b"connection"})

# RFC 9112 §5.1: at least ":" between a field's name and value, and CRLF after it.
FIELD_OVERHEAD = 3
MAX_HEADER_FIELDS = 256
"""Header fields one request may have (past it: 431, as for a head over its byte cap)."""
MAX_REQUEST_TARGET_BYTES = 8_192
"""Longest request target (path and query) taken; past it: 414 (RFC 9112 §3 asks a server to
take at least 8,000 octets; no URL of this API comes near)."""
MAX_PIPELINED = 64
"""Requests answered behind the running one on a connection (RFC 9112 §9.3.2 pipelining); the
last is answered `Connection: close`, and those past it are not read."""


class _Reading(enum.Enum):
    """What the connection waits for from its client."""

    FIRST_BYTE = enum.auto()
    HEAD = enum.auto()
    BODY = enum.auto()
    NOTHING = enum.auto()


class _Stop(Exception):
    """Raised from a parser callback: the only way to stop httptools mid-read."""


class _Flow(FlowControl):
    """uvicorn's flow control, with reading that can end for good: uvicorn resumes reading
    after each response, and whenever an app waits for its body."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__(transport)
        self.reading_ended = False

    def end_reading(self) -> None:
        self.reading_ended = True
        self.pause_reading()

    def resume_reading(self) -> None:
        if not self.reading_ended:
            super().resume_reading()


def _dropped(held: weakref.ref[RequestResponseCycle]) -> bool:
    cycle = held()
    return cycle is not None and cycle.disconnected


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the seven changes in the module's doc.

    uvicorn makes one per connection from the class alone, so the limits are class attributes:
    `limited_protocol` makes the class for other values.
    """

    max_request_head_bytes: ClassVar[int] = DEFAULT_MAX_REQUEST_HEAD_BYTES
    request_read_timeout_s: ClassVar[float] = DEFAULT_REQUEST_READ_TIMEOUT_S

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # The request whose app runs: pipelined ones wait in `self.pipeline` until it is
        # answered, and never start once the connection is closing.
        self._running: RequestResponseCycle | None = None
        # Set as the connection is made: the one every request's cycle shares.
        self._flow: _Flow
        # The refusal a parser callback stopped the parser for (`_stop`), and one waiting for
        # the responses owed before it (`_refuse`).
        self._stopped_for: tuple[int, str] | None = None
        self._owed_refusal: tuple[int, str] | None = None
        self._pipeline_too_deep = False
        self._messages = 0
        self._head_parsed = 0
        self._head_read = 0
        self._fields = 0
        self._reading = _Reading.NOTHING
        # One timer per connection, left armed across requests: each new deadline only moves
        # `_deadline`, and the timer, when it fires early, re-arms itself for the rest.
        self._deadline = 0.0
        self._timer: TimerHandle | None = None
        # The framing of the body the parser skipped, as the request asked to switch protocols;
        # and while the parser reads that framing again, its callbacks are not the request's.
        self._skipped_body: bytes | None = None
        self._reframing = False
        self._after_connect = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = self._flow = _Flow(transport)
        self._expect(_Reading.FIRST_BYTE)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        running = self._running
        if running is not None and running is not self.cycle:
            if not running.response_complete:
                running.disconnected = True
            running.message_event.set()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._after_connect:
            return
        message, in_head = self._messages, self._reading is _Reading.HEAD
        self._unset_keepalive_if_required()
        self._parse(data)
        if (
            self._reading is _Reading.NOTHING
            and (self.cycle is None or self.cycle.response_complete)
            and not self.transport.is_closing()
        ):
            # Bytes that begin no request (empty lines between requests, RFC 9112 §2.2)
            # cancelled uvicorn's keep-alive timeout: the read deadline takes its place.
            self._expect(_Reading.FIRST_BYTE)
        if (
            in_head
            and self._reading is _Reading.HEAD
            and self._messages == message
            and not self.transport.is_closing()
        ):
            # The whole read is part of one unfinished head, most of it in httptools' buffer
            # where no callback counts it.
            self._head_read += len(data)
            if self._head_read > self.max_request_head_bytes:
                self._refuse(431, HEAD_TOO_LARGE_DETAIL)

    def _parse(self, data: bytes) -> None:
        """Feed `data` to the parser, reading on as HTTP/1.1 after a request that asked to
        switch protocols, except after a `CONNECT`."""
        while True:
            try:
                self.parser.feed_data(data)
                return
            except httptools.HttpParserError:
                if self._pipeline_too_deep:
                    # Nothing to refuse: the last request within the depth closes.
                    self._reading = _Reading.NOTHING
                    self._flow.end_reading()
                else:
                    # Answered and logged as the client's fault, not a server warning.
                    self._refuse(*(self._stopped_for or (400, UNPARSABLE_DETAIL)))
                return
            except httptools.HttpParserUpgrade as upgrade:
                # httptools has let its parser go on; the bytes from the offset are unread.
                data = data[upgrade.args[0] :]
            if self._after_connect:
                return
            if self._skipped_body is not None:
                data, self._skipped_body = self._skipped_body + data, None
                self._reframing = True

    def _should_upgrade(self) -> bool:
        # No protocol is switched to: every request is the app's, as plain HTTP.
        return False

    def on_message_begin(self) -> None:
        if self._reframing:
            return
        super().on_message_begin()
        self._messages += 1
        self._head_parsed = self._head_read = self._fields = 0
        self._expect(_Reading.HEAD)

    def on_url(self, url: bytes) -> None:
        if self._reframing:
            return
        super().on_url(url)
        if len(self.url) > MAX_REQUEST_TARGET_BYTES:
            self._stop(414, TARGET_TOO_LONG_DETAIL)
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._reframing:
            return
        self._fields += 1
        if self._fields > MAX_HEADER_FIELDS:
            # Each field is kept as Python objects several times its wire size.
            self._stop(431, HEAD_TOO_LARGE_DETAIL)
        self._count_head(len(name) + len(value) + FIELD_OVERHEAD)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._reframing:
            # The body to come is the request's whose head has been read.
            self._reframing = False
            return
        version = self.parser.get_http_version()
        if version not in SERVED_VERSIONS:
            self._stop(505, VERSION_DETAIL)
        hosts = [value for name, value in self.headers if name == b"host"]
        fault = host_fault(version, hosts)
        if fault is not None:
            self._stop(400, fault)
        connect = self.parser.get_method() == b"CONNECT"
        if connect and not self.url.startswith(b"/"):
            # uvicorn parses every target as a path, and refuses CONNECT's authority-form one:
            # the app gets the authority as its path instead, as uvicorn's h11 protocol gives it.
            target, self.url = self.url, b"/"
            path = target.decode("ascii")
            super().on_headers_complete()
            self.scope["path"] = path
            self.scope["raw_path"] = target
        else:
            super().on_headers_complete()
        cycle = self.cycle
        self._expect(_Reading.BODY)
        # Weakly: the cycle holds its scope, and a cycle back would leave every request to the
        # cyclic collector.
        held = weakref.ref(cycle)
        extensions = cycle.scope.setdefault("extensions", {})
        extensions[ANSWER_UNSENT] = {"unsent": lambda: _dropped(held)}
        if connect:
            cycle.keep_alive = False
            self._after_connect = True
        elif self.parser.should_upgrade():
            fields = [b"%s: %s\r\n" % f for f in self.headers if f[0] in _FRAMING_FIELDS]
            line = b"POST / HTTP/" + version.encode("ascii")
            self._skipped_body = b"".join([line, b"\r\n", *fields, b"\r\n"])
        if len(self.pipeline) > MAX_PIPELINED:
            # One read can hold thousands of small requests, each queued with its scope. This
            # one and those after it go unanswered: the last within the depth closes the
            # connection (RFC 9112 §9.6), and the client sends them again on another (§9.3.2).
            self.pipeline.popleft()
            self.pipeline[0][0].keep_alive = False
            self._pipeline_too_deep = True
            raise _Stop

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def on_message_complete(self) -> None:
        if self._skipped_body is not None:
            # The parser stopped after the head of a request that asked to switch: its body,
            # if any, is yet to be read.
            return
        self._reading = _Reading.NOTHING
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if (
            self._owed_refusal is not None
            and not self._answer_pending(None)
            and not self.transport.is_closing()
        ):
            # The last response owed before the refusal is out: uvicorn's keep-alive timeout,
            # just armed, has no connection to keep.
            self._unset_keepalive_if_required()
            self._answer(*self._owed_refusal)

    def _stop(self, status: int, detail: str) -> NoReturn:
        """Stop the parser mid-read, to refuse the request being read `status`."""
        self._stopped_for = (status, detail)
        raise _Stop

    def _count_head(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > self.max_request_head_bytes:
            self._stop(431, HEAD_TOO_LARGE_DETAIL)

    def _expect(self, reading: _Reading) -> None:
        self._reading = reading
        self._deadline = self.loop.time() + self.request_read_timeout_s
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._on_deadline)

    def _stop_timer(self) -> None:
        self._reading = _Reading.NOTHING
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_deadline(self) -> None:
        self._timer = None
        if self._reading is _Reading.NOTHING or self.transport.is_closing():
            return
        if self._server_waits():
            self._expect(self._reading)
        elif self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._on_deadline)
        else:
            self._time_out()

    def _server_waits(self) -> bool:
        cycle = self.cycle
        return self.flow.read_paused or (
            self._reading is _Reading.BODY and cycle is not None and cycle.waiting_for_100_continue
        )

    def _time_out(self) -> None:
        if self._reading is _Reading.FIRST_BYTE:
            # No request to answer: as uvicorn's keep-alive timeout, just close.
            self._reading = _Reading.NOTHING
            self.transport.close()
        else:
            self._refuse(408, TIMEOUT_DETAIL)

    def _answer_pending(self, request: RequestResponseCycle | None) -> bool:
        """Whether a response owed before `request`'s (None: a request whose head has not
        arrived) is not complete. The running request's stands for those queued behind it:
        they are queued only while it runs."""
        running = self._running
        return running is not None and running is not request and not running.response_complete

    def _refuse(self, status: int, detail: str) -> None:
        """Answer the request being read `status` with an RFC 9457 body and close: the
        parser's state is unknown or the client too slow, so no further request on the
        connection is read (RFC 9112 §9.6).

        Responses go out in order (RFC 9112 §9.3.2): while those owed to earlier requests are
        not complete, reading stops and the answer waits for them (the server, not the
        client, is the one waiting then: no read deadline runs). A request whose response has
        started cannot be answered: the connection is only closed.
        """
        reading, self._reading = self._reading, _Reading.NOTHING
        self._flow.end_reading()
        request = self.cycle if reading is _Reading.BODY else None
        if request is not None:
            if self.pipeline and self.pipeline[0][0] is request:
                # Queued behind the running request (uvicorn queues on the left): it never
                # starts, and this is its answer.
                self.pipeline.popleft()
            else:
                # Its app may still run: it learns that its client is gone, and what it sends
                # is dropped instead of following this answer.
                if not request.response_complete:
                    request.disconnected = True
                request.message_event.set()
                if request.response_started:
                    self.transport.close()
                    return
        if self._answer_pending(request):
            self._owed_refusal = (status, detail)
        else:
            self._answer(status, detail)

    def _answer(self, status: int, detail: str) -> None:
        """Write the refusal `_refuse` decided on, and close."""
        if self.access_log:
            # As uvicorn's access line for an answered request, so a client's fault is found
            # where its other requests are, with its address, rather than as a server warning.
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            self.access_logger.info('%s - "-" %d (%s)', client, status, detail)
        problem = {"type": "about:blank", "title": TITLES[status], "status": status}
        body = orjson.dumps({**problem, "detail": detail})
        head = [STATUS_LINE[status]]
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


def limited_protocol(
    max_request_head_bytes: int, request_read_timeout_s: float
) -> type[HttpProtocol]:
    """`HttpProtocol` with the given head cap (bytes) and read timeout (seconds)."""

    class Limited(HttpProtocol):
        pass

    Limited.max_request_head_bytes = max_request_head_bytes
    Limited.request_read_timeout_s = request_read_timeout_s
    return Limited
