"""`CallStore`: each call's state and event log in Redis, kept current by the owner.

Keys (names and hash slots in `service.redis_keys`):

- the call's state — JSON: `record` (our `Call`, see `record_to_json`), `view` (the API's
  `Call.to_json()`, so any instance can answer `GET`), `core` (the call core's
  `CallState.snapshot()`). Bounded as the record and the core are.
- the call's event log — its SSE events as a stream (fields `name`, `data`), trimmed to about
  `events_maxlen` entries; the entry id is the SSE `id`.
- the call's deleted mark — present once the call was deleted through the API (for
  `retention_s`): every instance then answers that it is gone.
- the call's hung-up mark — present once an instance other than the owner hung the call up at
  the provider for the API, its owner not answering (for `retention_s`): the owner, finding its
  call gone at the provider, and any instance taking the call over then end it as hung up.
- the calls' summaries: a hash of each live call's record without its growing parts
  (`record.summary`), for listing calls without reading their transcripts.

A save writes the state and appends the events in one transaction, so a successor never sees
events whose effects are missing from the state, or the other way round; the summary, in
another slot, is written apart (`summarise`). Once a call has ended its keys expire after
`retention_s`.

Which calls are live (to be taken over should their owner die) is not kept here but with the
leases (`service.calls.lease`): a call is listed there before its first save, and taken off
only after its ended state is saved.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from service.calls.record import ERRORS_SHOWN, Call, HandoffRecord, summary
from service.redis_keys import RedisKeys
from signaling.ids import CallId
from signaling.realtime import SessionConfig

if TYPE_CHECKING:
    from service.redis_client import RedisClient

_TERMINAL_STATES: Final = ("ended", "failed")


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event of a call's log: its stream id (the SSE `id`), name and JSON data."""

    event_id: str
    name: str
    data: dict[str, Any]

    @property
    def final(self) -> bool:
        """Whether this event ends the stream (the call ended)."""
        return self.name == "call.state" and self.data.get("state") in _TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class KeptEvents:
    """What a call's event log keeps: the id of its oldest event, and whether older ones may
    have been trimmed (events are appended, and trimmed from the front only)."""

    oldest: str
    may_be_trimmed: bool


@dataclass(frozen=True, slots=True)
class StoredCall:
    """What `CallStore.load` returns: the parts of a saved call, and its marks."""

    record: dict[str, Any]
    view: dict[str, Any]
    core: dict[str, Any]
    deleted: bool = False
    hung_up: bool = False


class CallStore:
    """Reads and writes calls' saved state and event logs. Methods raise what
    `service.redis_client.redis_failures` names when Redis cannot be reached."""

    def __init__(
        self, redis: RedisClient, *, keys: RedisKeys, events_maxlen: int, retention_s: float
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._events_maxlen = events_maxlen
        self._retention_ms = max(1, round(retention_s * 1000))

    async def save(
        self,
        call_id: str,
        stored: StoredCall,
        events: Sequence[tuple[str, dict[str, Any]]],
        *,
        ended: bool,
    ) -> None:
        """Write the call's state and append `events` to its log, atomically; once the call
        has ended, its keys start to expire. Its summary is `summarise`'s to write."""
        state_key, events_key = self._keys.state(call_id), self._keys.events(call_id)
        body = json.dumps({"record": stored.record, "view": stored.view, "core": stored.core})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(state_key, body)
            for name, data in events:
                pipe.xadd(
                    events_key,
                    {"name": name, "data": json.dumps(data, separators=(",", ":"))},
                    maxlen=self._events_maxlen,
                    approximate=True,
                )
            if ended:
                pipe.pexpire(state_key, self._retention_ms)
                pipe.pexpire(events_key, self._retention_ms)
            await pipe.execute()

    async def summarise(self, call_id: str, view: dict[str, Any] | None) -> None:
        """Keep the summary of the live call's record `view`; None (it has ended) drops it.
        Writing the same again changes nothing, so a failed save may be retried whole."""
        if view is None:
            await self._redis.hdel(self._keys.summaries, call_id)
        else:
            await self._redis.hset(self._keys.summaries, call_id, json.dumps(summary(view)))

    async def load(self, call_id: str) -> StoredCall | None:
        """The saved call, or None when none is kept (unknown, or expired)."""
        keys = self._keys
        raw, deleted, hung_up = await self._redis.mget(
            keys.state(call_id), keys.deleted(call_id), keys.hung_up(call_id)
        )
        if raw is None:
            return None
        data = json.loads(raw)
        return StoredCall(
            data["record"], data["view"], data["core"], deleted is not None, hung_up is not None
        )

    async def mark_deleted(self, call_id: str) -> None:
        """Record that the call was deleted through the API (kept for `retention_s`)."""
        await self._redis.set(self._keys.deleted(call_id), "1", px=self._retention_ms)

    async def is_deleted(self, call_id: str) -> bool:
        """Whether `mark_deleted` was called for the call (within `retention_s`)."""
        return bool(await self._redis.exists(self._keys.deleted(call_id)))

    async def mark_hung_up(self, call_id: str) -> None:
        """Record that an instance other than the call's owner is hanging it up at the
        provider for the API (kept for `retention_s`)."""
        await self._redis.set(self._keys.hung_up(call_id), "1", px=self._retention_ms)

    async def is_hung_up(self, call_id: str) -> bool:
        """Whether `mark_hung_up` was called for the call (within `retention_s`)."""
        return bool(await self._redis.exists(self._keys.hung_up(call_id)))

    async def summaries(self, call_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The saved summaries of live `call_ids` (one round trip), leaving out ended ones and
        those not saved yet."""
        if not call_ids:
            return []
        raws = await self._redis.hmget(self._keys.summaries, list(call_ids))
        return [json.loads(raw) for raw in raws if raw is not None]

    async def wait_for_events(self, call_id: str, after: str, block_ms: int) -> bool:
        """Whether an event after id `after` is (or, within `block_ms`, gets) logged."""
        reply: Any = await self._redis.xread(
            {self._keys.events(call_id): after}, count=1, block=block_ms
        )
        return bool(reply)

    async def last_event(self, call_id: str) -> LoggedEvent | None:
        """The newest event in the call's log (None when it holds none)."""
        newest: Any = await self._redis.xrevrange(self._keys.events(call_id), count=1)
        return _logged(*newest[0]) if newest else None

    async def read_after(
        self, call_id: str, after: str, count: int = 100
    ) -> tuple[KeptEvents | None, list[LoggedEvent]]:
        """At one instant: what the call's log keeps (None when it holds nothing: nothing
        logged yet, or expired) and up to `count` events after id `after`."""
        key = self._keys.events(call_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xrange(key, count=1)
            pipe.xlen(key)
            pipe.xrange(key, min=f"({after}", count=count)
            oldest, length, entries = await pipe.execute()
        kept = (
            # Approximate trimming always leaves at least `events_maxlen` entries, so a
            # shorter log was never trimmed.
            KeptEvents(str(oldest[0][0]), length >= self._events_maxlen) if oldest else None
        )
        return kept, [_logged(entry_id, fields) for entry_id, fields in entries]


def _logged(entry_id: str, fields: dict[str, str]) -> LoggedEvent:
    return LoggedEvent(entry_id, fields["name"], json.loads(fields["data"]))


def record_to_json(call: Call) -> dict[str, Any]:
    """Everything of a `Call` a successor needs (not the transcript and the activity times:
    the core's snapshot holds them)."""
    confirmed = call.confirmed_config
    return {
        "call_id": call.call_id,
        "config": asdict(call.config),
        "state": call.state,
        "created_at": call.created_at,
        "answered_at": call.answered_at,
        "joined_at": call.joined_at,
        "ended_at": call.ended_at,
        "end_reason": call.end_reason,
        "session_id": call.session_id,
        "max_duration_s": call.max_duration_s,
        "idle_timeout_s": call.idle_timeout_s,
        "confirmed_config": asdict(confirmed) if confirmed is not None else None,
        "end_code": call.end_code,
        "end_message": call.end_message,
        "limits_reached": dict(call.limits_reached),
        "handoffs": [asdict(h) for h in call.handoffs.values()],
        "errors": list(call.errors[-ERRORS_SHOWN:]),
        "sideband_reconnects": call.sideband_reconnects,
        "started_by": call.started_by,
        "kind": call.kind,
        "sip_headers": dict(call.sip_headers),
        "transferred_to": call.transferred_to,
    }


def record_from_json(data: dict[str, Any], owner: str) -> Call:
    """A `Call` as `record_to_json` saved it, now owned by `owner`."""
    handoffs = [HandoffRecord(**h) for h in data["handoffs"]]
    confirmed = data["confirmed_config"]
    return Call(
        call_id=CallId(data["call_id"]),
        config=SessionConfig(**data["config"]),
        owner=owner,
        state=data["state"],
        created_at=data["created_at"],
        answered_at=data["answered_at"],
        joined_at=data["joined_at"],
        ended_at=data["ended_at"],
        end_reason=data["end_reason"],
        session_id=data["session_id"],
        max_duration_s=data["max_duration_s"],
        idle_timeout_s=data["idle_timeout_s"],
        confirmed_config=SessionConfig(**confirmed) if confirmed is not None else None,
        end_code=data["end_code"],
        end_message=data["end_message"],
        limits_reached=dict(data["limits_reached"]),
        handoffs={h.handoff_id: h for h in handoffs},
        errors=list(data["errors"]),
        sideband_reconnects=data["sideband_reconnects"],
        started_by=data["started_by"],
        # Absent from what an older release saved: its calls were WebRTC calls.
        kind=data.get("kind", "webrtc"),
        sip_headers=dict(data.get("sip_headers", {})),
        transferred_to=data.get("transferred_to"),
    )
