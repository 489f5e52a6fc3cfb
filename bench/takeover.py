"""Takeover latency: how long a call goes unserved after its owner dies.

For each lease setting: a redis-server, the stand-in provider in no-media mode
(`CALLBRIDGE_LOCAL_MEDIA=false`), and two `callbridge serve` instances `a` and `b`, each its own
process. `--calls` calls are started on `a`, then `a` is SIGKILLed. Per call it measures, from
the kill:

- **rejoined**: until the provider sees a sideband connected to the call again (its debug
  record's `subscribers`, polled every `--poll` seconds, so figures are rounded up by that);
- **first event**: until `b` has applied the first provider event after the rejoin, read
  exactly from the call's event log in Redis (stream entry ids are Redis' clock in ms, on the
  same host as ours).

The lease is what the figures are mostly made of (a lapsed lease is noticed within half a lease
more), so each run prints its lease setting beside them, and a run with the shortest lease is the
baseline for the others.

Run: `.venv/bin/python bench/takeover.py [--leases 1,2,5] [--calls 50]`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from offers import make_offer
from redis.asyncio import Redis

from service.redis_keys import RedisKeys

KEY = "sk-bench"
WAIT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def callbridge(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return spawn([sys.executable, "-m", "service.cli", *args], env, log)


async def wait_http(url: str) -> None:
    deadline = time.monotonic() + WAIT_S
    async with httpx.AsyncClient(timeout=0.5) as client:
        while True:
            try:
                await client.get(url)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


@dataclass
class Run:
    lease_s: float
    rejoined_s: list[float]
    first_event_s: list[float]
    missing: int


async def run(
    lease_s: float, calls: int, poll_s: float, offer: str, workdir: Path, log_level: str
) -> Run:
    redis_port, provider_port = free_port(), free_port()
    ports = {"a": free_port(), "b": free_port()}
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    provider_url = f"http://127.0.0.1:{provider_port}"
    executable = shutil.which("redis-server") or "redis-server"
    children = {
        "redis": spawn(
            [executable, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
            {},
            workdir / "redis.log",
        ),
        "provider": callbridge(
            ["provider", "--port", str(provider_port)],
            {"CALLBRIDGE_API_KEY": KEY, "CALLBRIDGE_LOCAL_MEDIA": "false"},
            workdir / "provider.log",
        ),
    }
    for name, port in ports.items():
        children[name] = callbridge(
            ["serve"],
            {
                "CALLBRIDGE_PROVIDER": "openai",
                "CALLBRIDGE_PROVIDER_URL": provider_url,
                "CALLBRIDGE_API_KEY": KEY,
                "CALLBRIDGE_QUEUE": redis_url,
                "CALLBRIDGE_PORT": str(port),
                "CALLBRIDGE_INSTANCE_ID": name,
                "CALLBRIDGE_CALL_LEASE_S": str(lease_s),
                "CALLBRIDGE_DRAIN_TIMEOUT_S": "0",
                "CALLBRIDGE_RATE_LIMIT_BURST": "10000",
                "CALLBRIDGE_LOG_LEVEL": log_level,
            },
            workdir / f"instance-{name}-{lease_s:g}.log",
        )
    a, b = (f"http://127.0.0.1:{ports[n]}" for n in ("a", "b"))
    try:
        await wait_http(f"{provider_url}/healthz")
        await wait_http(f"{a}/healthz")
        await wait_http(f"{b}/healthz")
        async with (
            httpx.AsyncClient(timeout=10.0) as http,
            Redis.from_url(redis_url, decode_responses=True) as redis,
        ):
            call_ids = await start_calls(http, a, offer, calls)
            await wait_joined(http, provider_url, call_ids)
            # Established calls are measured: their leases renewed and their state saved.
            await asyncio.sleep(2 * lease_s)
            killed_at = time.time()
            children["a"].kill()
            rejoined = await watch_rejoins(http, provider_url, call_ids, killed_at, poll_s)
            first = await first_events(redis, call_ids, killed_at)
            for call_id in call_ids:
                await http.delete(f"{b}/v1/calls/{call_id}")
    finally:
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
    return Run(
        lease_s,
        list(rejoined.values()),
        list(first.values()),
        calls - min(len(rejoined), len(first)),
    )


async def start_calls(http: httpx.AsyncClient, instance: str, offer: str, n: int) -> list[str]:
    async def one() -> str:
        response = await http.post(
            f"{instance}/v1/calls", content=offer, headers={"content-type": "application/sdp"}
        )
        response.raise_for_status()
        return response.headers["location"].rsplit("/", 1)[1]

    semaphore = asyncio.Semaphore(8)

    async def bounded() -> str:
        async with semaphore:
            return await one()

    return list(await asyncio.gather(*(bounded() for _ in range(n))))


async def subscribers(http: httpx.AsyncClient, provider_url: str, call_id: str) -> int:
    response = await http.get(
        f"{provider_url}/v1/realtime/calls/{call_id}",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    return int(response.json()["subscribers"])


async def seen_at(http: httpx.AsyncClient, provider_url: str, call_id: str) -> tuple[int, float]:
    """The call's sideband count, and when we asked (the answer is at most that old)."""
    asked_at = time.time()
    return await subscribers(http, provider_url, call_id), asked_at


async def wait_joined(http: httpx.AsyncClient, provider_url: str, call_ids: list[str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        counts = await asyncio.gather(*(subscribers(http, provider_url, c) for c in call_ids))
        if all(count >= 1 for count in counts):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("calls never joined their sidebands")
        await asyncio.sleep(0.1)


async def watch_rejoins(
    http: httpx.AsyncClient, provider_url: str, call_ids: list[str], since: float, poll_s: float
) -> dict[str, float]:
    """Seconds from `since` until each call's sideband was connected again (after it dropped)."""
    dropped: set[str] = set()
    rejoined: dict[str, float] = {}
    deadline = time.monotonic() + WAIT_S
    while len(rejoined) < len(call_ids) and time.monotonic() < deadline:
        waiting = [c for c in call_ids if c not in rejoined]
        seen = await asyncio.gather(*(seen_at(http, provider_url, c) for c in waiting))
        for call_id, (count, asked_at) in zip(waiting, seen, strict=True):
            if count == 0:
                dropped.add(call_id)
            elif call_id in dropped:
                rejoined[call_id] = asked_at - since
        await asyncio.sleep(poll_s)
    return rejoined


async def first_events(redis: Redis, call_ids: list[str], since: float) -> dict[str, float]:
    """Seconds from `since` until the first event each call logged after it (Redis' clock)."""
    deadline = time.monotonic() + WAIT_S
    since_ms = int(since * 1000)
    found: dict[str, float] = {}
    while len(found) < len(call_ids) and time.monotonic() < deadline:
        for call_id in call_ids:
            if call_id in found:
                continue
            entries = await redis.xrange(RedisKeys().events(call_id), min=since_ms, count=1)
            if entries:
                found[call_id] = int(str(entries[0][0]).split("-")[0]) / 1000 - since
        await asyncio.sleep(0.1)
    return found


def report(runs: list[Run], calls: int, poll_s: float) -> None:
    print(f"\nTakeover after SIGKILL of the owner: {calls} calls per run, poll {poll_s:g} s")
    print("lease_s | rejoined p50 | rejoined p99 | 1st event p50 | 1st event p99 | not taken over")
    for r in runs:
        if not r.rejoined_s or not r.first_event_s:
            print(f"{r.lease_s:7g} | no call was taken over")
            continue
        print(
            f"{r.lease_s:7g} | {percentile(r.rejoined_s, 50):10.2f} s | "
            f"{percentile(r.rejoined_s, 99):10.2f} s | {percentile(r.first_event_s, 50):11.2f} s"
            f" | {percentile(r.first_event_s, 99):11.2f} s | {r.missing}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", default="1,2,5", help="lease settings in seconds")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--poll", type=float, default=0.05, help="provider poll period, s")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs (at INFO) here")
    args = parser.parse_args()
    offer = await make_offer()
    runs = []
    with tempfile.TemporaryDirectory(prefix="takeover-") as tmp:
        workdir = args.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        level = "INFO" if args.logs else "WARNING"
        for lease in sorted(float(v) for v in args.leases.split(",")):
            runs.append(await run(lease, args.calls, args.poll, offer, workdir, level))
    report(runs, args.calls, args.poll)


if __name__ == "__main__":
    asyncio.run(main())
