"""Calls: the manager, their sessions and records, typed control commands and their errors,
and, with Redis, ownership leases, saved state and the call directory."""

from service.calls.control import (
    Command,
    DeleteCall,
    GetCall,
    HangUp,
    InjectText,
    UpdateSession,
)
from service.calls.directory import CallDirectory
from service.calls.errors import (
    CallAlreadyEnded,
    CallError,
    CallGone,
    CapacityExceeded,
    Draining,
    InvalidCommand,
    OwnerUnreachable,
    UnknownCall,
)
from service.calls.lease import CallLeases
from service.calls.manager import CallManager
from service.calls.retention import EndedCalls
from service.calls.store import CallStore

__all__ = [
    "CallAlreadyEnded",
    "CallDirectory",
    "CallError",
    "CallGone",
    "CallLeases",
    "CallManager",
    "CallStore",
    "CapacityExceeded",
    "Command",
    "DeleteCall",
    "Draining",
    "EndedCalls",
    "GetCall",
    "HangUp",
    "InjectText",
    "InvalidCommand",
    "OwnerUnreachable",
    "UnknownCall",
    "UpdateSession",
]
