"""A stand-in call's conversation goes on whoever listens, as it does at the real provider.

The conversation lives with the call, not with its sidebands: while none is attached the caller
keeps talking and the model keeps answering, the items made meanwhile stay in the conversation
(retrievable with `conversation.item.retrieve`, never replayed to a sideband that joins later),
and the next item names the last of them as its `previous_item_id`. In process: sidebands are
event sinks subscribed to a `LocalCall`, and the caller speaks through `user_spoke`, as the
phone leg's `say` does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from media.local_provider.calls import CallRegistry, LocalCall
from media.local_provider.config import LocalProviderConfig
from media.local_provider.server_events import JsonObject

REQUEST = "please ask the background agent what is two plus three"


class Sideband:
    """An event sink that keeps every server event it is sent."""

    def __init__(self) -> None:
        self.events: list[JsonObject] = []

    async def send_event(self, event: JsonObject) -> bool:
        self.events.append(event)
        return True

    async def close(self) -> None:
        return None

    def of_type(self, event_type: str) -> list[JsonObject]:
        return [e for e in self.events if e["type"] == event_type]


@pytest.fixture
async def call() -> AsyncIterator[LocalCall]:
    registry = CallRegistry(LocalProviderConfig(media=False))
    yield registry.create()
    await registry.end_all()
    registry.close()


async def left_alone(call: LocalCall) -> None:
    """A sideband follows the first turn, then goes: the call has no sideband."""
    first = Sideband()
    await call.subscribe(first)
    await call.user_spoke("hello can you hear me")
    await finished(call)
    call.unsubscribe(first)


async def finished(call: LocalCall) -> None:
    """Wait until the reply started by the latest turn is made."""
    async with asyncio.timeout(5.0):
        while True:
            if call.conversation.active_response_id is None:
                return
            await asyncio.sleep(0.01)


async def asked_for_a_handoff_alone(call: LocalCall) -> list[dict[str, Any]]:
    """With no sideband attached, the user asks for a handoff and the model calls the tool;
    the conversation's items then."""
    await left_alone(call)
    await call.user_spoke(REQUEST)
    await finished(call)
    return call.conversation.item_outline()


async def joined_later(call: LocalCall) -> Sideband:
    later = Sideband()
    await call.subscribe(later)
    return later


async def test_a_sideband_joining_later_is_sent_nothing_made_before_it(call: LocalCall) -> None:
    await left_alone(call)
    await call.user_spoke("what time is it")
    await finished(call)

    later = Sideband()
    await call.subscribe(later)

    assert [e["type"] for e in later.events] == ["session.created"]


async def test_the_first_item_after_a_gap_follows_the_last_item_made_in_it(
    call: LocalCall,
) -> None:
    *_, tool_call = await asked_for_a_handoff_alone(call)
    later = await joined_later(call)

    await call.user_spoke("what time is it")

    [committed] = later.of_type("input_audio_buffer.committed")
    assert tool_call["type"] == "function_call"
    assert committed["previous_item_id"] == tool_call["id"]


async def test_items_made_while_no_sideband_was_attached_can_be_retrieved(
    call: LocalCall,
) -> None:
    *_, said, tool_call = await asked_for_a_handoff_alone(call)
    later = await joined_later(call)

    for item in (said, tool_call):
        retrieve = {"type": "conversation.item.retrieve", "item_id": item["id"]}
        await call.handle_client_text(json.dumps(retrieve))

    retrieved = [e["item"] for e in later.of_type("conversation.item.retrieved")]
    assert [i["content"][0]["transcript"] for i in retrieved[:1]] == [REQUEST]
    assert [(i["type"], i["status"], i["call_id"]) for i in retrieved[1:]] == [
        ("function_call", "completed", tool_call["call_id"])
    ]


async def test_the_debug_record_outlines_the_conversations_items_in_order(
    call: LocalCall,
) -> None:
    await left_alone(call)
    await call.user_spoke(REQUEST)
    await finished(call)

    outline = call.debug_record()["items"]

    assert [(i["type"], i.get("role")) for i in outline] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("function_call", None),
    ]
    assert "call_id" in outline[-1]
