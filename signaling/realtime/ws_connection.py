"""`BatchedConnection`: websockets' client connection, delivering received messages in batches.

websockets' own `recv()` hands over one message per await, through a queue of frames with a
future per wait. A provider pushing thousands of small events a second makes that per-message
machinery cost more than handling the events. This connection keeps websockets' handshake, TLS,
proxies, keepalive, closing handshake and size cap, and changes only the receiving side:

- the common frame (whole, unmasked, text or binary, up to 64 KiB) is read straight out of the
  received bytes (`ws_frames.take_messages`) while websockets' parser waits at a frame
  boundary; every other frame is handed to websockets as it arrives, so its checks and
  replies (pong, close, protocol errors, the size cap, each as soon as plain websockets makes
  it) are unchanged;
- messages wait in one list, and `recv_batch` takes any number of them at once;
- reading from the socket pauses while more than `MAX_UNREAD_BYTES` of messages wait (RFC 6455
  leaves flow control to TCP), and resumes once the reader has taken them down to a quarter.

Text that is not UTF-8 fails the connection with close code 1007 when the reader reaches it,
after the messages before it, as websockets' `recv()` does; nothing after it is delivered.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.frames import OP_BINARY, OP_CONT, OP_PONG, OP_TEXT, CloseCode, Frame
from websockets.protocol import CONNECTING, OPEN, Event, Protocol
from websockets.streams import StreamReader

from signaling.realtime.ws_frames import frame_end, take_messages, takes_once_whole

MAX_UNREAD_BYTES: Final = 256 * 1024
"""Payload bytes of received messages not yet taken above which reading from the socket
pauses. What one read brings in (asyncio reads up to 256 KiB) is still taken in whole."""

_RESUME_BYTES: Final = MAX_UNREAD_BYTES // 4
_DATA_OPCODES: Final = (OP_TEXT, OP_BINARY, OP_CONT)

# websockets' parser, waiting for the first byte of a frame: the generators `parse` delegates
# to, outermost first. Any other chain (a handshake, a frame half read, the discarding after
# a close) leaves the bytes to websockets.
_AT_FRAME_START: Final = (
    ClientProtocol.parse.__code__,
    Protocol.parse.__code__,
    StreamReader.at_eof.__code__,
)


def at_frame_start(protocol: ClientProtocol) -> bool:
    """Whether websockets' parser of the open `protocol` waits for the first byte of a frame,
    with nothing received and not yet parsed, and no fragmented message under way."""
    if protocol.state is not OPEN or protocol.cur_size is not None or protocol.reader.buffer:
        return False
    generator: Any = protocol.parser
    for code in _AT_FRAME_START:
        if generator is None or getattr(generator, "gi_code", None) is not code:
            return False
        generator = generator.gi_yieldfrom
    return generator is None


class BatchedConnection(ClientConnection):
    """A `ClientConnection` whose messages are read with `recv_batch`, not `recv`."""

    # In slots: eight more keys in the inherited instance dict would double its size, and
    # every held call has one connection.
    __slots__ = (
        "_fragments",
        "_held",
        "_held_until",
        "_inbox",
        "_reading_paused",
        "_undecodable",
        "_unread_bytes",
        "_waiter",
    )

    def __init__(self, protocol: ClientProtocol, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self._inbox: list[str | bytes] = []
        self._unread_bytes = 0
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None
        # Bytes of a frame not yet complete, kept until `_held_until` bytes are there (0: its
        # header is not complete yet).
        self._held = bytearray()
        self._held_until = 0
        self._fragments: list[Frame] = []
        self._undecodable: UnicodeDecodeError | None = None

    @property
    def unread_bytes(self) -> int:
        """Payload bytes of the messages received and not yet taken."""
        return self._unread_bytes

    def take_batch(self, limit: int) -> list[str | bytes]:
        """Up to `limit` messages already received, oldest first, without waiting."""
        inbox = self._inbox
        if len(inbox) <= limit:
            batch, self._inbox = inbox, []
        else:
            batch = inbox[:limit]
            del inbox[:limit]
        if batch:
            self._unread_bytes -= sum(map(len, batch))
            if self._reading_paused and self._unread_bytes <= _RESUME_BYTES:
                self._reading_paused = False
                self.transport.resume_reading()
        return batch

    async def recv_batch(self, limit: int) -> list[str | bytes]:
        """The next messages, at least one and at most `limit`, oldest first.

        Raise `ConnectionClosed` once the connection has closed and every message received
        before has been taken. Cancelling it loses nothing.
        """
        while not self._inbox and self._undecodable is None and not self._lost():
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch = self.take_batch(limit)
        if batch:
            return batch
        if self._undecodable is not None:
            exc = self._undecodable
            async with self.send_context():
                self.protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
        await asyncio.shield(self.connection_lost_waiter)
        raise self.protocol.close_exc from self.recv_exc

    def _lost(self) -> bool:
        return self.connection_lost_waiter.done()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _deliver(self, message: str | bytes) -> None:
        if self._undecodable is None:
            self._inbox.append(message)
            self._unread_bytes += len(message)

    def _can_split(self) -> bool:
        protocol = self.protocol
        return not protocol.extensions and self._undecodable is None and at_frame_start(protocol)

    def data_received(self, data: bytes) -> None:
        if self._held:
            self._held += data
            if len(self._held) < self._held_until:
                return
            data, self._held = bytes(self._held), bytearray()
        if self.protocol.state is CONNECTING:
            # The provider's first event often comes in the same read as the handshake's
            # response: websockets gets the response alone, so that what follows it is read
            # here (websockets' parser would hold on to the last frame it read).
            end = data.find(b"\r\n\r\n") + 4
            if 4 <= end < len(data):
                super().data_received(data[:end])
                data = data[end:]
        if not self._can_split():
            super().data_received(data)
        else:
            self._split(data)
        if self._unread_bytes > MAX_UNREAD_BYTES and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        if self._inbox:
            self._wake()

    def _split(self, data: bytes) -> None:
        inbox, end = self._inbox, len(data)
        max_size = self.protocol.max_size
        cap = max_size if max_size is not None else end
        pos = 0
        while True:
            taken = len(inbox)
            stop = take_messages(data, pos, cap, inbox)
            if len(inbox) > taken:
                self._unread_bytes += sum(map(len, inbox[taken:]))
            pos = stop
            if pos == end:
                return
            until = frame_end(data, pos)
            if until is None or until > end:
                if takes_once_whole(data, pos, max_size):
                    # Kept until the frame is whole, to be taken here.
                    self._held = bytearray(data[pos:])
                    self._held_until = 0 if until is None else until - pos
                else:
                    # Any other frame is websockets' from its first byte on, as if this
                    # connection were plain: it refuses one on its header (a mask, a reserved
                    # opcode, a size past the cap) without waiting for the rest.
                    super().data_received(data[pos:])
                return
            # A frame for websockets (a control frame, a fragment, text that is not UTF-8,
            # one past the size cap): its checks and replies.
            super().data_received(data[pos:until])
            pos = until
            if pos == end:
                return
            if not self._can_split():
                super().data_received(data[pos:])
                return

    def process_event(self, event: Event) -> None:
        if not isinstance(event, Frame):
            super().process_event(event)  # the handshake's response
        elif event.opcode in _DATA_OPCODES:
            self._data_frame(event)
        elif event.opcode is OP_PONG:
            self.acknowledge_pings(bytes(event.data))

    def _data_frame(self, frame: Frame) -> None:
        self._fragments.append(frame)
        if not frame.fin:
            return
        frames, self._fragments = self._fragments, []
        payload = b"".join(part.data for part in frames)
        if frames[0].opcode is OP_BINARY:
            self._deliver(payload)
            return
        try:
            self._deliver(payload.decode())
        except UnicodeDecodeError as exc:
            if self._undecodable is None:
                self._undecodable = exc
            self._wake()

    def eof_received(self) -> None:
        # A frame cut short by the end of the stream is websockets' to report.
        if self._held:
            held, self._held = bytes(self._held), bytearray()
            super().data_received(held)
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._wake()
