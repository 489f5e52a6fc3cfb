"""Response arbitration: at most one `response.create` in flight or running at a time.

Server VAD may start a response at any moment, so a `response.create` can still be refused
with `conversation_already_has_active_response` (PROTOCOL §10.1); it is then sent again once
that response is done. Wishes made while a response runs collapse into one `response.create`.
"""

from __future__ import annotations

from typing import Final

ACTIVE_RESPONSE_CODE: Final = "conversation_already_has_active_response"
"""The `error.code` refusing a `response.create` while a response is in progress."""


class ResponseArbiter:
    """Decides when a `response.create` may go out."""

    def __init__(self) -> None:
        self.active = False
        self.wanted = False
        self.in_flight: str | None = None

    def request(self, can_send: bool) -> bool:
        """A response is wanted; return True when a `response.create` should go out now."""
        if self.active or self.in_flight is not None or not can_send:
            self.wanted = True
            return False
        self.wanted = False
        return True

    def sending(self, event_id: str) -> None:
        """A `response.create` with `event_id` is going out."""
        self.in_flight = event_id
        self.wanted = False

    def created(self) -> str | None:
        """A response started; return the event id of ours that it answers, if any."""
        self.active = True
        ours, self.in_flight = self.in_flight, None
        return ours

    def done(self, can_send: bool) -> bool:
        """A response ended; return True when a waiting `response.create` should go out now.

        A `response.create` still in flight is settled too: a refusal of it would have come
        before this (the provider answers in order)."""
        self.active = False
        self.in_flight = None
        if self.wanted and can_send:
            self.wanted = False
            return True
        return False

    def refused(self, event_id: str, code: str | None) -> bool:
        """Our `response.create` `event_id` was refused; return whether it is to be retried
        when the running response is done (the active-response race)."""
        if event_id != self.in_flight:
            return False
        self.in_flight = None
        if code == ACTIVE_RESPONSE_CODE:
            self.active = True
            self.wanted = True
            return True
        return False

    def link_lost(self, resend: bool) -> None:
        """The link dropped: a response running then may have ended unseen. A
        `response.create` in flight may be lost with it; it is asked for again on the next
        link when `resend` (what it was for may not have been heard either)."""
        if self.in_flight is not None and resend:
            self.wanted = True
        self.active = False
        self.in_flight = None
