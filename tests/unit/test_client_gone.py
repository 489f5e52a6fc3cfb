"""Asking whether a request's client has gone takes what the server has ready and never waits;
asking whether its answer was written relies on the server's word, when it offers one."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.types import Message

from service.api.disconnect import ANSWER_UNSENT, answer_unsent, client_gone


def _request(ready: Message | None, waited: list[bool]) -> Request:
    event = asyncio.Event()

    async def receive() -> Message:
        if ready is not None:
            return ready
        try:
            await event.wait()
        finally:
            waited.append(not event.is_set())
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


def test_a_disconnect_the_server_has_ready_means_the_client_has_gone() -> None:
    assert client_gone(_request({"type": "http.disconnect"}, []))


def test_a_server_with_nothing_ready_is_not_waited_for() -> None:
    waited: list[bool] = []

    async def ask() -> bool:
        return client_gone(_request(None, waited))

    assert asyncio.run(ask()) is False
    # The abandoned wait was closed, not left pending.
    assert waited == [True]


def test_more_body_ready_is_not_a_disconnect() -> None:
    ready: Message = {"type": "http.request", "body": b"", "more_body": False}
    assert not client_gone(_request(ready, []))


def test_a_server_without_the_extension_never_reports_an_unsent_answer() -> None:
    assert not answer_unsent({"type": "http", "extensions": {}})


def test_a_server_offering_the_extension_is_asked_whether_the_answer_was_written() -> None:
    lost = {"type": "http", "extensions": {ANSWER_UNSENT: {"unsent": lambda: True}}}
    written = {"type": "http", "extensions": {ANSWER_UNSENT: {"unsent": lambda: False}}}
    assert answer_unsent(lost)
    assert not answer_unsent(written)
