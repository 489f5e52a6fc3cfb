"""What the call layer refuses, as domain errors; only the HTTP layer turns them into problems."""

from __future__ import annotations


class CallError(Exception):
    """Base of every error `service.calls` raises to its callers."""


class UnknownCall(CallError):
    """No such call, or one the caller may not see (its existence is not their business)."""


class CallAlreadyEnded(CallError):
    """The command needs a live call, and this one has ended."""


class CallGone(CallError):
    """The call was deleted (`DeleteCall`): its record is no longer served."""


class InvalidCommand(CallError):
    """A command (usually one forwarded by another instance) that cannot be carried out."""


class CapacityExceeded(CallError):
    """Every call slot of this instance is taken."""


class Draining(CallError):
    """The instance is shutting down and takes no new calls."""


class OwnerUnreachable(CallError):
    """The call's owner (or Redis, which names it) did not answer in time; try again."""


class NotAPhoneCall(CallError):
    """The command needs a phone call (SIP), and this call is a WebRTC call."""


class TransferRefused(CallError):
    """The provider refused to transfer the call; `provider_status` is its HTTP status."""

    def __init__(self, message: str, provider_status: int | None = None) -> None:
        super().__init__(message)
        self.provider_status = provider_status
