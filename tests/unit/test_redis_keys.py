"""Every key a Lua script touches is given to it in KEYS, and the keys used together share a hash
slot, as a Redis Cluster requires (slots computed as redis-py computes them)."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

import service
from service.redis_keys import RedisKeys

SERVICE = Path(service.__file__).parent
KEYS = RedisKeys()
CALLS = ("rtc_a", "rtc_Zz0-_9", "0b4e7f6a-3c1d-4e2f-9a8b-7c6d5e4f3a2b")
INSTANCES = ("a", "cb-0123456789ab", "{weird}:instance")
# A tool call id is the model's: braces in it must not move the mark out of its slot.
HANDOFF = f"{CALLS[1]}:call_{{weird}}"

# Redis commands our scripts call, whose first argument is their (only) key.
KEY_FIRST = {
    "GET",
    "SET",
    "DEL",
    "SADD",
    "SREM",
    "XADD",
    "XACK",
    "XDEL",
    "XRANGE",
    "PEXPIRE",
    "ZRANGE",
    "ZADD",
    "ZSCORE",
    "ZREM",
    "SISMEMBER",
    "HGET",
    "HSET",
    "PTTL",
    "EXISTS",
}
# Those whose first argument is a subcommand, and the second their key.
KEY_SECOND = {"XINFO", "XGROUP"}
KEYLESS = {"TIME"}
_CALL = re.compile(r"redis\.p?call\(\s*'([A-Z]+)'\s*(?:,\s*([^,)]+?))?\s*(?:,\s*([^,)]+?))?\s*[,)]")
_KEY_ARGUMENT = re.compile(r"KEYS\[[^\]]+\]")
_BOUND_TO_KEYS = (
    re.compile(r"for\s+\w+\s*,\s*(\w+)\s+in\s+ipairs\(KEYS\)"),
    re.compile(r"local\s+(\w+)\s*=\s*KEYS\[[^\]]+\]"),
)


def scripts() -> dict[str, str]:
    """Every module-level string of the service that calls Redis (a Lua script or a part of
    one), by `module.NAME`."""
    found: dict[str, str] = {}
    for path in sorted(SERVICE.rglob("*.py")):
        module = ".".join(path.relative_to(SERVICE.parent).with_suffix("").parts)
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                if not isinstance(target, ast.Name):
                    continue
                value = getattr(
                    importlib.import_module(module.removesuffix(".__init__")), target.id
                )
                if isinstance(value, str) and "redis.call(" in value:
                    found[f"{module}.{target.id}"] = value
    return found


def slots(keys: list[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


# What each script is given, as the code that runs it gives it.
ROUTE_KEYS = [
    KEYS.lease(CALLS[0]),
    KEYS.parked(CALLS[0]),
    KEYS.results(INSTANCES[0]),
    KEYS.instances,
]
GIVEN: dict[str, Callable[[], list[str]]] = {
    "service.calls.lease._RENEW": lambda: [KEYS.live, *(KEYS.lease(call) for call in CALLS)],
    "service.calls.lease._HAND_OVER": lambda: [KEYS.lease(CALLS[0])],
    "service.calls.lease._RELEASE": lambda: [KEYS.lease(CALLS[0]), KEYS.live],
    "service.calls.lease._FORGET": lambda: [
        KEYS.instances,
        KEYS.live,
        *(KEYS.results(instance) for instance in INSTANCES),
    ],
    "service.calls.lease._HOLD": lambda: [KEYS.instance_hold(INSTANCES[0])],
    "service.calls.lease._HEARTBEAT": lambda: [KEYS.instances, KEYS.instance_hold(INSTANCES[0])],
    "service.calls.lease._LET_GO": lambda: [KEYS.instance_hold(INSTANCES[0])],
    "service.calls.hangups._CLAIM_DUE": lambda: [KEYS.hangups],
    "service.handoffs.redis_streams._FORGET": lambda: [KEYS.handoffs],
    "service.handoffs.redis_streams._KNOWN_FUNCTION": lambda: ROUTE_KEYS,
    "service.handoffs.redis_streams._ROUTE_FUNCTION": lambda: ROUTE_KEYS,
    "service.handoffs.redis_streams._ROUTE": lambda: ROUTE_KEYS,
    "service.handoffs.redis_streams._COMPLETE": lambda: [*ROUTE_KEYS, KEYS.handoffs],
    "service.handoffs.redis_streams._BURY": lambda: [*ROUTE_KEYS, KEYS.handoffs, KEYS.dead],
    "service.handoffs.redis_streams._ADD": lambda: [KEYS.handoffs, KEYS.handoff_mark(HANDOFF)],
    "service.handoffs.redis_streams._DONE": lambda: [
        KEYS.results(INSTANCES[0]),
        KEYS.handoff_mark(HANDOFF),
    ],
    "service.handoffs.redis_streams._REROUTE": lambda: [
        *ROUTE_KEYS,
        *(KEYS.results(instance) for instance in INSTANCES[1:]),
    ],
    "service.redis_client._TIME": lambda: [KEYS.instances],
    "service.redis_client.NOW_MS_LUA": lambda: [KEYS.instances],
}


def names_bound_to_keys(script: str) -> set[str]:
    """The Lua variables that only ever hold one of KEYS."""
    bound = {match for pattern in _BOUND_TO_KEYS for match in pattern.findall(script)}
    return {
        name
        for name in bound
        if all(
            script.startswith("KEYS[", assigned.end())
            for assigned in re.finditer(rf"(?<![\w.]){name}\s*=(?!=)\s*", script)
        )
    }


def test_every_script_touches_only_the_keys_it_is_given() -> None:
    for name, script in scripts().items():
        bound = names_bound_to_keys(script)
        for command, first, second in _CALL.findall(script):
            if command in KEYLESS:
                continue
            key = second if command in KEY_SECOND else first
            assert command in KEY_FIRST | KEY_SECOND, (
                f"{name}: teach this test where {command}'s key is"
            )
            assert _KEY_ARGUMENT.fullmatch(key) or key in bound, f"{name}: {command} {key}"


def test_every_script_is_known_with_the_keys_it_is_given() -> None:
    assert sorted(scripts()) == sorted(GIVEN)


def test_the_keys_each_script_is_given_share_a_slot() -> None:
    for name, keys in GIVEN.items():
        assert len(slots(keys())) == 1, name


call_ids = st.one_of(
    st.from_regex(r"rtc_[A-Za-z0-9_-]{1,128}", fullmatch=True), st.uuids().map(str)
)


@given(call_ids, call_ids, st.text(min_size=1), st.text(min_size=1))
def test_the_ownership_keys_of_any_calls_and_instances_share_one_slot(
    call: str, other: str, instance: str, peer: str
) -> None:
    ownership = [
        KEYS.lease(call),
        KEYS.lease(other),
        KEYS.parked(call),
        KEYS.results(instance),
        KEYS.results(peer),
        KEYS.handoffs,
        KEYS.dead,
        KEYS.instances,
        KEYS.epoch,
        KEYS.live,
    ]
    assert len(slots(ownership)) == 1


@given(call_ids)
def test_a_calls_state_events_and_marks_share_its_slot(call: str) -> None:
    keys = [KEYS.state(call), KEYS.events(call), KEYS.deleted(call), KEYS.hung_up(call)]
    assert len(slots(keys)) == 1


def test_the_calls_summaries_have_a_slot_of_their_own() -> None:
    assert slots([KEYS.summaries]) != slots([KEYS.handoffs])


def test_calls_spread_over_the_slots() -> None:
    calls = [f"rtc_{n:04d}" for n in range(200)]
    assert len(slots([KEYS.state(call) for call in calls])) > 150
