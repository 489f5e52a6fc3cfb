"""Every key callbridge keeps in Redis, and which of them share a hash slot.

Redis Cluster spreads keys over 16384 hash slots, and runs a script, a transaction or a
multi-key command only when all its keys are in one slot. A key with a hash tag, the part
inside its first `{...}`, is placed by that part alone, so keys with the same tag share a slot
(https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags). Keys
used together get a tag in common; keys never used together get none, so that they spread over
the cluster's nodes. Names below are for the default prefix `callbridge`; `<...>` is a variable
part.

One call (tag: the call id), the bulk of what is stored and written:

- `callbridge:{<call_id>}:state` — the call's saved state (`service.calls.store`).
- `callbridge:{<call_id>}:events` — its event log, served as SSE.
- `callbridge:{<call_id>}:deleted` — present once the call was deleted through the API.
- `callbridge:{<call_id>}:hung-up` — present once an instance other than the call's owner hung
  it up at the provider for a hang-up or deletion through the API, the owner not answering.

A save writes the state and appends the events in one transaction, and a load reads the
state with both marks, so these four share the call's slot; every call has its own, so calls
spread over the cluster.

Ownership and handoffs (tag: `{callbridge}`), one slot for all calls and instances:

- `{callbridge}:calls:<call_id>` — the call's lease: its owner's instance id
  (`service.calls.lease`).
- `{callbridge}:instances`, `{callbridge}:epoch` — live instances; the mark that tells when
  this slot's data was lost.
- `{callbridge}:instance-hold:<instance>` — which process runs as the instance: a mark of that
  process and when it last renewed it, expiring a lease after (`service.calls.lease`).
- `{callbridge}:live` — the ids of live calls, where instances look for lapsed leases.
- `{callbridge}:handoffs`, `{callbridge}:dead` — the handoff stream (consumer group `workers`)
  and its dead letters (`service.handoffs.redis_streams`).
- `{callbridge}:results:<instance>` — worker events for the calls one instance owns, read by
  its consumer group `owner` (`RESULTS_GROUP`). Whatever appends to it also makes sure the
  instance is among the instances (lapsed, if it has gone), and it is deleted with the
  instance's entry there (`service.calls.lease`): no results stream outlives that entry, by
  which successors and the clean-up find it.
- `{callbridge}:results-parked:<call_id>` — events for a call that has no owner right now.
- `{callbridge}:handoff-queued:<handoff_id>` — the mark of a handoff appended to the handoff
  stream, kept for the handoff deadline (`service.handoffs.redis_streams`).

These must share a slot: a handoff is appended in the script that sets its mark, so that a
successor queueing it again appends it only if its predecessor had not; a worker's answer is
appended to the results of the instance whose lease names the call in the script that reads the
lease, together with its handoff's acknowledgement, so that routing and a change of owner never
interleave; a takeover moves a call's events from other instances' results in one script; an
instance that has gone is forgotten with its results in one script, which reads the live calls
to tell whether any event there is still wanted; an instance's heartbeat renews its entry and
its hold in one script, which tells whether another process renewed the hold meanwhile; an
instance renews all its leases in one script, and a call is listed as live by the script that
writes its lease (so that no call is ever leased but unlisted, which an owner dying then would
leave to nobody). Their entries are small (an instance id, a call id, a handoff, a worker's
answer), and the handoff stream is one key on one node anyway.

The calls' summaries (tag: `{callbridge:index}`):

- `{callbridge:index}:summaries` — each live call's record without its growing parts, for
  listing calls without reading their transcripts.

Written with every save, but apart from the call's keys, and read to list calls: its own slot,
so that neither the ownership slot nor any call's slot also carries it. Its size is bounded by
the number of live calls. Only the listing reads it: a call missing from it is still taken over.

One key per command, no tag (each key anywhere):

- `callbridge:control:<instance>`, `callbridge:control-replies:<instance>` — control requests
  to one instance, and the replies to its own (`service.calls.directory`).
- `callbridge:hangups` — hang-ups being retried (`service.calls.hangups`).
- `callbridge:webhooks:<webhook_id>` — webhook ids already seen.

The rate limits' keys are the `limits` library's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_PREFIX = "callbridge"

RESULTS_GROUP: Final = "owner"
"""The consumer group (and its only consumer) by which an instance reads its results."""


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """The key names under `prefix` (default `callbridge`), which must not hold `{` or `}`.

    Raises `ValueError` for an empty prefix or one with a brace (it would change the tags).
    """

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            raise ValueError("the Redis key prefix must be non-empty, without '{' or '}'")

    # One call

    def state(self, call_id: str) -> str:
        """The call's saved state (JSON)."""
        return f"{self.prefix}:{{{call_id}}}:state"

    def events(self, call_id: str) -> str:
        """The call's event log (a stream)."""
        return f"{self.prefix}:{{{call_id}}}:events"

    def deleted(self, call_id: str) -> str:
        """The mark of a call deleted through the API."""
        return f"{self.prefix}:{{{call_id}}}:deleted"

    def hung_up(self, call_id: str) -> str:
        """The mark of a call hung up at the provider by an instance other than its owner."""
        return f"{self.prefix}:{{{call_id}}}:hung-up"

    # Ownership and handoffs

    def lease(self, call_id: str) -> str:
        """The call's lease: its owner's instance id."""
        return f"{{{self.prefix}}}:calls:{call_id}"

    @property
    def instances(self) -> str:
        """Live instances, a sorted set scored by when their heartbeat lapses."""
        return f"{{{self.prefix}}}:instances"

    def instance_hold(self, instance: str) -> str:
        """The mark of the process running as `instance` (a hash expiring unrenewed)."""
        return f"{{{self.prefix}}}:instance-hold:{instance}"

    @property
    def live(self) -> str:
        """The ids of live calls (a set)."""
        return f"{{{self.prefix}}}:live"

    @property
    def epoch(self) -> str:
        """A random mark whose loss tells that Redis lost the ownership slot's data."""
        return f"{{{self.prefix}}}:epoch"

    @property
    def handoffs(self) -> str:
        """The handoff stream."""
        return f"{{{self.prefix}}}:handoffs"

    @property
    def dead(self) -> str:
        """Handoffs given up on."""
        return f"{{{self.prefix}}}:dead"

    def results(self, instance: str) -> str:
        """Worker events for the calls `instance` owns."""
        return f"{{{self.prefix}}}:results:{instance}"

    def parked(self, call_id: str) -> str:
        """Worker events for a call that has no owner right now."""
        return f"{{{self.prefix}}}:results-parked:{call_id}"

    def handoff_mark(self, handoff_id: str) -> str:
        """The mark of a handoff appended to the handoff stream, kept for the deadline."""
        return f"{{{self.prefix}}}:handoff-queued:{handoff_id}"

    # The calls' summaries

    @property
    def summaries(self) -> str:
        """Live calls' summaries (a hash by call id)."""
        return f"{{{self.prefix}:index}}:summaries"

    # One key per command

    def control(self, instance: str) -> str:
        """Control requests to `instance` (a stream)."""
        return f"{self.prefix}:control:{instance}"

    def control_replies(self, instance: str) -> str:
        """Replies to `instance`'s control requests (a stream)."""
        return f"{self.prefix}:control-replies:{instance}"

    @property
    def hangups(self) -> str:
        """Hang-ups being retried (a sorted set)."""
        return f"{self.prefix}:hangups"

    def webhook(self, webhook_id: str) -> str:
        """The mark of a webhook id already seen."""
        return f"{self.prefix}:webhooks:{webhook_id}"
