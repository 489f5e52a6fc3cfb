"""Every log record leaves the process redacted and of bounded size, whoever logged it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from service.logs import MAX_LOG_MESSAGE_BYTES, MAX_LOG_TRACEBACK_BYTES, configure_logging

SECRET = "sk-live-0123456789abcdefghijklmnop"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("INFO", "json", secrets=[SECRET], stream=out)
    yield out
    configure_logging("INFO", "json", stream=io.StringIO())


def _last(out: io.StringIO) -> dict[str, str]:
    record: dict[str, str] = json.loads(out.getvalue().splitlines()[-1])
    return record


def test_a_message_past_the_cap_is_cut_with_its_whole_size(lines: io.StringIO) -> None:
    line = f'127.0.0.1:1 - "GET /{"a" * 60_000} HTTP/1.1" 404'
    logging.getLogger("uvicorn.access").info("%s", line)
    message = _last(lines)["msg"]
    assert len(message.encode()) <= MAX_LOG_MESSAGE_BYTES
    assert message.startswith('127.0.0.1:1 - "GET /aaa')
    assert message.endswith(f"…[cut: {len(line)} bytes]")


def test_a_message_within_the_cap_is_left_whole(lines: io.StringIO) -> None:
    logging.getLogger("callbridge").info("call %s started", "rtc_1")
    assert _last(lines)["msg"] == "call rtc_1 started"


def test_a_secret_is_redacted_before_the_cut_so_no_part_of_it_survives(
    lines: io.StringIO,
) -> None:
    padding = "x" * (MAX_LOG_MESSAGE_BYTES - 10)
    logging.getLogger("callbridge").warning("%s%s", padding, SECRET)
    assert "sk-live" not in _last(lines)["msg"]


def test_a_traceback_past_its_cap_is_cut(lines: io.StringIO) -> None:
    try:
        raise ValueError("provider said: " + "z" * 100_000)
    except ValueError:
        logging.getLogger("callbridge").exception("provider failed")
    record = _last(lines)
    assert record["msg"] == "provider failed"
    assert len(record["exc"].encode()) <= MAX_LOG_TRACEBACK_BYTES
    assert record["exc"].startswith("Traceback")
    assert "…[cut: " in record["exc"]
