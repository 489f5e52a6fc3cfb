"""Strict validation of the stand-in's wire objects against the official `openai` SDK's types.

Strict means: JSON-mode strict pydantic validation (no coercion: a string is never a number,
an int is never a bool) and no field the SDK's model does not declare, at any depth (the SDK's
models allow extra fields, so that is checked by walking the validated tree).

One allowance: `session.created` / `session.updated` type their `session` with the SDK's
*request* models, which have no `id` or `object`, although the API reference shows both in these
events (https://platform.openai.com/docs/api-reference/realtime-server-events/session/created).
Their session is therefore validated, just as strictly, by the SDK's session *response* models
(`RealtimeSessionCreateResponse`, which declares `id` and `object`), and the event around it by
the event model.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from openai.types.realtime import (
    ClientSecretCreateResponse,
    RealtimeServerEvent,
    RealtimeSessionCreateResponse,
    RealtimeTranscriptionSessionCreateResponse,
)
from pydantic import BaseModel

_UNION = typing.get_args(RealtimeServerEvent)[0]
SERVER_EVENT_MODELS: dict[str, type[BaseModel]] = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(_UNION)
}
"""Every server event type the SDK knows, by its `type`."""


class NotConformant(AssertionError):
    """A wire object the SDK's types reject (or accept only by ignoring fields)."""


_SESSION_EVENTS = ("session.created", "session.updated")


def extra_fields(value: object, path: str = "") -> list[str]:
    """Where, in a validated SDK object, fields were kept that its model does not declare."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{name}" for name in value.__pydantic_extra__ or {}]
        for name in type(value).model_fields:
            found += extra_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list | tuple):
        for index, element in enumerate(value):
            found += extra_fields(element, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, element in value.items():
            found += extra_fields(element, f"{path}.{key}")
    return found


def validate_strictly(
    model: type[BaseModel], obj: dict[str, Any], *, skip: tuple[str, ...] = ()
) -> BaseModel:
    """`obj` validated strictly by `model`; raises NotConformant naming what is wrong.

    `skip`: paths (as `extra_fields` names them) whose subtrees are not checked for extras.
    """
    try:
        validated = model.model_validate_json(json.dumps(obj), strict=True)
    except ValueError as exc:
        raise NotConformant(f"{model.__name__} rejects {obj!r}: {exc}") from exc
    extras = [path for path in extra_fields(validated) if not path.startswith(skip)]
    if extras:
        raise NotConformant(f"{model.__name__} does not declare {extras} in {obj!r}")
    return validated


def validate_server_event(event: dict[str, Any]) -> BaseModel:
    """One server event validated strictly by the SDK's model for its `type`."""
    kind = event.get("type", "")
    model = SERVER_EVENT_MODELS.get(kind)
    if model is None:
        raise NotConformant(f"the SDK knows no server event of type {kind!r}")
    if kind in _SESSION_EVENTS:
        validate_session(event["session"])
        return validate_strictly(model, event, skip=(".session.",))
    return validate_strictly(model, event)


def validate_session(session: dict[str, Any]) -> BaseModel:
    """A session object (as the server shows it) validated by the SDK's session models."""
    if session.get("type") == "transcription":
        return validate_strictly(RealtimeTranscriptionSessionCreateResponse, session)
    return validate_strictly(RealtimeSessionCreateResponse, session)


def validate_client_secret(answer: dict[str, Any]) -> BaseModel:
    """A `POST /v1/realtime/client_secrets` answer validated by the SDK's response model."""
    return validate_strictly(ClientSecretCreateResponse, answer)
