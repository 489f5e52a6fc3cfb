"""The call's single outbox: every client event we send, stamped with our own `event_id`.

Each client event reaches the provider exactly once per successful connection. An event whose
send failed waits for the next connection. An item we created stays "unconfirmed" until the
provider echoes it: a frame written just before a link drops can be lost without any error, so
unconfirmed items go out again, under the same item id, on the next connection (the provider
refuses a duplicate id, so an item is never added twice).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

JsonObject = dict[str, Any]

_REMEMBERED_EVENTS: Final = 256
"""How many sent event ids are kept to match `error` events against (oldest forgotten)."""


class Outbox:
    """Client events waiting to be sent, and those sent but not yet echoed."""

    def __init__(self, new_event_id: Callable[[], str]) -> None:
        self._new_event_id = new_event_id
        self._pending: list[JsonObject] = []
        self._unconfirmed: OrderedDict[str, JsonObject] = OrderedDict()
        self._sent: OrderedDict[str, str] = OrderedDict()

    def stamp(self, payload: JsonObject) -> JsonObject:
        """`payload` with a fresh `event_id` first."""
        return {"event_id": self._new_event_id(), **payload}

    def queue(self, payload: JsonObject) -> None:
        """Hold a stamped event for the next connection."""
        self._pending.append(payload)

    def sent(self, payload: JsonObject) -> None:
        """A stamped event is handed to the driver to send on the open link."""
        self._sent[payload["event_id"]] = payload["type"]
        while len(self._sent) > _REMEMBERED_EVENTS:
            self._sent.popitem(last=False)
        item_id = _item_id(payload)
        if item_id is not None:
            self._unconfirmed[item_id] = payload

    def send_failed(self, payload: JsonObject) -> None:
        """The driver could not send `payload`: it goes out on the next connection."""
        item_id = _item_id(payload)
        if item_id is not None and item_id in self._unconfirmed:
            # Resent with the unconfirmed items already.
            return
        if all(queued["event_id"] != payload["event_id"] for queued in self._pending):
            self._pending.append(payload)

    def confirmed(self, item_id: str) -> bool:
        """The provider echoed item `item_id`; return whether it was one of ours in flight."""
        return self._unconfirmed.pop(item_id, None) is not None

    @property
    def unconfirmed(self) -> bool:
        """Whether items we sent are not yet echoed."""
        return bool(self._unconfirmed)

    def sent_type(self, event_id: str | None) -> str | None:
        """The type of the client event `event_id` names, if we sent it lately."""
        return self._sent.get(event_id) if event_id is not None else None

    def for_new_connection(self) -> list[JsonObject]:
        """What a new connection must carry after its `session.update`: unconfirmed items
        (again, under their item ids), then what waited, in order; `session.update`s that
        waited are left out, as the new connection's own update supersedes them."""
        resend = list(self._unconfirmed.values())
        queued = {id(payload) for payload in resend}
        waiting = [
            payload
            for payload in self._pending
            if payload["type"] != "session.update" and id(payload) not in queued
        ]
        self._pending.clear()
        self._unconfirmed.clear()
        return resend + waiting

    def to_json(self) -> JsonObject:
        """Unsent and unconfirmed events, for a snapshot."""
        return {"pending": list(self._pending), "unconfirmed": list(self._unconfirmed.values())}

    def restore(self, data: JsonObject) -> None:
        """Take back `to_json` output (already validated as lists of objects)."""
        self._pending = [p for p in data.get("pending", []) if _stamped(p)]
        for payload in data.get("unconfirmed", []):
            item_id = _item_id(payload) if _stamped(payload) else None
            if item_id is not None:
                self._unconfirmed[item_id] = payload


def _stamped(payload: object) -> bool:
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("event_id"), str)
        and isinstance(payload.get("type"), str)
    )


def _item_id(payload: JsonObject) -> str | None:
    item = payload.get("item")
    item_id = item.get("id") if isinstance(item, dict) else None
    return item_id if isinstance(item_id, str) else None
