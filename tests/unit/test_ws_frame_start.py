"""Telling when websockets' client parser waits at a frame boundary: only then are received
bytes read without it (`BatchedConnection`), so a websockets upgrade that moved its parser
would quietly send every frame the slow way."""

from __future__ import annotations

import base64
import hashlib

from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from signaling.realtime.ws_connection import at_frame_start

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def _opened(extra: bytes = b"") -> ClientProtocol:
    """A client protocol past its handshake; `extra` arrives right behind the 101 answer."""
    protocol = ClientProtocol(parse_uri("ws://provider.test/v1/realtime?call_id=rtc_1"))
    request = protocol.connect()
    protocol.send_request(request)
    accept = base64.b64encode(
        hashlib.sha1((request.headers["Sec-WebSocket-Key"] + _GUID).encode()).digest()
    ).decode()
    answer = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode()
    protocol.receive_data(answer + extra)
    return protocol


def test_an_open_connection_with_nothing_pending_is_at_a_frame_start() -> None:
    assert at_frame_start(_opened())


def test_a_frame_half_received_is_not_a_frame_start() -> None:
    assert not at_frame_start(_opened(b"\x81\x05he"))


def test_the_frame_start_comes_back_once_the_frame_is_whole() -> None:
    protocol = _opened(b"\x81\x05he")
    protocol.receive_data(b"llo")
    assert at_frame_start(protocol)


def test_a_fragmented_message_under_way_is_not_a_frame_start() -> None:
    assert not at_frame_start(_opened(b"\x01\x03abc"))


def test_a_connection_closing_is_not_at_a_frame_start() -> None:
    protocol = _opened()
    protocol.send_close(1000)
    assert not at_frame_start(protocol)


def test_a_connection_still_in_its_handshake_is_not_at_a_frame_start() -> None:
    protocol = ClientProtocol(parse_uri("ws://provider.test/v1/realtime?call_id=rtc_1"))
    protocol.send_request(protocol.connect())
    assert not at_frame_start(protocol)
