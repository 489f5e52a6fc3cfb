"""One running process per instance id (`CALLBRIDGE_INSTANCE_ID`) on one Redis.

Control requests, worker answers and call leases are addressed to an instance by its id, so two
processes running as one instance take each other's, and calls fail without a word. Each test
runs `callbridge serve` processes, given the same id, around a private redis-server (or, where
a test says so, the session's Redis Cluster too); they name a provider nobody serves, as no call
is made.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.redis_keys import RedisKeys
from tests.e2e.processes import Process, free_port
from tests.e2e.redis_cluster import SharedRedis
from tests.e2e.waiting import until

INSTANCE = "dup"
KEYS = RedisKeys()
# How many times, at least, each of two processes running as one instance meets the other's
# hold before the test looks at what they said.
MEETINGS = 3


class Instances:
    """Starts `callbridge serve` processes on the test's Redis, all running as `INSTANCE`."""

    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.redis_url = redis_url
        self.tmp_path = tmp_path
        self.started: list[Process] = []

    def start(self, *, lease_s: float | None = None, **settings: str) -> tuple[Process, str]:
        """Launch one (without waiting for it), with `settings` (`CALLBRIDGE_<NAME>`) besides
        the test's; its process and URL."""
        port = free_port()
        env = {
            "CALLBRIDGE_PROVIDER": "openai",
            "CALLBRIDGE_PROVIDER_URL": f"http://127.0.0.1:{free_port()}",
            "CALLBRIDGE_API_KEY": "sk-local-0123456789abcdef",
            "CALLBRIDGE_QUEUE": self.redis_url,
            "CALLBRIDGE_INSTANCE_ID": INSTANCE,
            "CALLBRIDGE_LOG_FORMAT": "json",
        }
        if lease_s is not None:
            env["CALLBRIDGE_CALL_LEASE_S"] = str(lease_s)
        env.update({f"CALLBRIDGE_{name.upper()}": value for name, value in settings.items()})
        log = self.tmp_path / f"serve-{len(self.started)}.log"
        process = Process(["serve", "--port", str(port)], env, log).start()
        self.started.append(process)
        return process, f"http://127.0.0.1:{port}"

    def serving(self, *, lease_s: float | None = None) -> Process:
        """Launch one and wait until it answers."""
        process, url = self.start(lease_s=lease_s)
        process.wait_http(f"{url}/healthz")
        return process


@pytest.fixture
def instances(shared_redis: SharedRedis, tmp_path: Path) -> Iterator[Instances]:
    running = Instances(shared_redis.url, tmp_path)
    try:
        yield running
    finally:
        for process in running.started:
            process.stop()


def _exit_status(process: Process) -> int | None:
    assert process.proc is not None
    return process.proc.poll()


def _refusal(process: Process) -> str:
    """The one line a refused process wrote, once it has exited with status 2."""
    assert _exit_status(process) == 2, process.output()
    lines = process.output().strip().splitlines()
    assert len(lines) == 1, process.output()
    return lines[0]


def _twin_errors(process: Process) -> list[dict[str, Any]]:
    """The ERROR lines in which `process` says another process runs as its instance."""
    lines = [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]
    return [
        line
        for line in lines
        if line["level"] == "error" and "CALLBRIDGE_INSTANCE_ID" in line["msg"]
    ]


@pytest.mark.parametrize("shared_redis", ["single", "cluster"], indirect=True)
async def test_an_instance_is_refused_the_id_a_running_instance_has(
    instances: Instances,
) -> None:
    instances.serving()
    twin, _ = instances.start()
    await until(lambda: _exit_status(twin) is not None)
    line = _refusal(twin)
    assert line.startswith("callbridge: invalid configuration: ")
    assert f"CALLBRIDGE_INSTANCE_ID={INSTANCE}" in line


async def test_of_two_instances_started_together_with_one_id_one_serves(
    instances: Instances,
) -> None:
    started = [instances.start(), instances.start()]
    await until(lambda: any(_exit_status(process) is not None for process, _ in started))
    [(refused, _)] = [(p, url) for p, url in started if _exit_status(p) is not None]
    [(running, url)] = [(p, url) for p, url in started if p is not refused]
    assert "CALLBRIDGE_INSTANCE_ID" in _refusal(refused)
    running.wait_http(f"{url}/healthz")


async def test_an_instance_whose_configuration_is_refused_lets_go_of_its_id(
    instances: Instances, shared_redis: SharedRedis
) -> None:
    failed, _ = instances.start(handler="no_such_module:answer")
    await until(lambda: _exit_status(failed) is not None)
    assert _exit_status(failed) == 2, failed.output()
    assert await shared_redis.client.exists(KEYS.instance_hold(INSTANCE)) == 0


async def test_an_instance_restarted_after_it_was_killed_runs_as_its_id_again(
    instances: Instances,
) -> None:
    killed = instances.serving()
    assert killed.proc is not None
    killed.proc.kill()
    killed.proc.wait()
    # Its hold is still there, unlapsed, when its successor starts.
    instances.serving()


@pytest.mark.parametrize("shared_redis", ["single", "cluster"], indirect=True)
async def test_two_instances_running_as_one_each_say_so_in_one_error_line(
    instances: Instances, shared_redis: SharedRedis
) -> None:
    first = instances.serving(lease_s=1.0)
    with first.stalled():
        # The first's hold lapses unrenewed while it is frozen, so the second takes it.
        second = instances.serving(lease_s=1.0)
    holders: list[str] = []

    async def held_in_turn() -> bool:
        holder = await shared_redis.client.hget(KEYS.instance_hold(INSTANCE), "process")
        if holder is not None and holder not in holders[-1:]:
            holders.append(str(holder))
        # Each change of holder is a heartbeat that met the other's hold.
        return len(holders) > 2 * MEETINGS

    await until(held_in_turn)
    assert [len(_twin_errors(first)), len(_twin_errors(second))] == [1, 1]
    assert f"instance {INSTANCE}" in _twin_errors(first)[0]["msg"]
