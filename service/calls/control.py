"""Typed control commands on a call, and their wire form between instances.

The HTTP layer builds a command from a validated request and hands it to
`CallManager.execute`, which runs it here or at the instance that owns the call; the same
command travels as JSON through the `CallDirectory` and is carried out there by the same code.
Failures are `service.calls.errors` exceptions, never HTTP answers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from service.auth import Principal
from service.calls.errors import InvalidCommand

OutputModality = Literal["audio", "text"]


@dataclass(frozen=True, slots=True)
class GetCall:
    """The call's record (`Call.to_json()`), live or recently ended."""

    call_id: str
    principal: Principal


@dataclass(frozen=True, slots=True)
class HangUp:
    """End the call at the provider, keeping its record readable; answers the record without
    transcript."""

    call_id: str
    principal: Principal


@dataclass(frozen=True, slots=True)
class DeleteCall:
    """End the call at the provider if it is live, then forget it: answers the full final
    record, and every later command on the call raises `CallGone`."""

    call_id: str
    principal: Principal


@dataclass(frozen=True, slots=True)
class InjectText:
    """Add user text to the live conversation and ask for a response."""

    call_id: str
    principal: Principal
    text: str


@dataclass(frozen=True, slots=True)
class UpdateSession:
    """Change session settings of the live call; None leaves a setting as it is."""

    call_id: str
    principal: Principal
    instructions: str | None = None
    voice: str | None = None
    output_modality: OutputModality | None = None

    def changes(self) -> dict[str, Any]:
        """The settings this command sets."""
        fields = {
            "instructions": self.instructions,
            "voice": self.voice,
            "output_modality": self.output_modality,
        }
        return {name: value for name, value in fields.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Refer:
    """Transfer a live phone call with a SIP REFER to `target_uri` (`tel:`, `sip:`, `sips:`)."""

    call_id: str
    principal: Principal
    target_uri: str


Command = GetCall | HangUp | DeleteCall | InjectText | UpdateSession | Refer

_KINDS: Final[dict[str, type[Command]]] = {
    "get": GetCall,
    "hangup": HangUp,
    "delete": DeleteCall,
    "message": InjectText,
    "session": UpdateSession,
    "refer": Refer,
}
_NAMES: Final = {kind: name for name, kind in _KINDS.items()}


def command_name(command: Command) -> str:
    """The command's wire name (`get`, `hangup`, `delete`, `message`, `session`, `refer`)."""
    return _NAMES[type(command)]


def command_to_json(command: Command) -> dict[str, Any]:
    """The command's fields as a JSON object, `principal` nested as its `kind` and `token_id`
    (what `may_control` decides by)."""
    # Without the principal's `expires_at`: it does not bear on controlling a call, and an
    # instance of an earlier release, during a rolling deploy, refuses a field it does not know.
    principal = {"kind": command.principal.kind, "token_id": command.principal.token_id}
    return {**asdict(command), "principal": principal}


def command_from_json(name: str, data: dict[str, Any]) -> Command:
    """Parse `command_to_json` output; `InvalidCommand` on an unknown name or bad fields."""
    kind = _KINDS.get(name)
    if kind is None:
        raise InvalidCommand(f"unknown control command {name!r}")
    try:
        principal = Principal(**data["principal"])
        fields = {k: v for k, v in data.items() if k != "principal"}
        if not all(isinstance(v, str) or v is None for v in fields.values()):
            raise TypeError("command fields must be strings")
        return kind(principal=principal, **fields)
    except (KeyError, TypeError) as exc:
        raise InvalidCommand(f"malformed {name!r} command: {exc}") from None
