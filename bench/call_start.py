"""Call start: what callbridge adds to a provider call creation, in latency and in CPU.

Processes, all on this machine: a `callbridge provider` in no-media mode
(`CALLBRIDGE_LOCAL_MEDIA=false`: fake SDP answers, a real sideband WebSocket) and one
`callbridge serve` pointed at it (`CALLBRIDGE_PROVIDER=openai`), each in its own process.

- **Serial latency.** `--serial` rounds, one request at a time; each round sends the baseline,
  the same multipart POST (sdp + session, as callbridge sends it) straight to the provider's
  `POST /v1/realtime/calls`, then `POST /v1/calls` (application/sdp) to callbridge, and waits
  until callbridge has joined the sideband and the provider confirmed the `session.update`
  (the `session.ready` event on the call's event stream), so rounds do not overlap. Both times
  are to the 201. Added latency = callbridge p50 - direct p50 (and the same for p99).
- **Throughput.** `--burst` call starts with `--concurrency` in flight, to callbridge and, as
  the baseline, straight to the provider; starts/s is 201s per second of wall time.
- **Orchestrator CPU per start.** `--burst` starts made one at a time with nothing watching;
  once the last call's `session.update` is confirmed (the `session_updated` setup-latency count
  on `/metrics`, polled a few times), the orchestrator's CPU time (user + system, psutil)
  since the first start, less its idle CPU over the same wall time, divided by the calls:
  HTTP request, provider POST, sideband join, `session.update` and its confirmation included.
- **Idle RSS.** The orchestrator's RSS (psutil) once it answers `/healthz` and has sat idle for
  2 s, before any call: a `callbridge serve` with a remote provider (`CALLBRIDGE_PROVIDER=openai`
  and a URL), the only kind the control plane runs with in production.

Calls are hung up (not timed) after each phase. Run:
`.venv/bin/python bench/call_start.py [--serial 300] [--burst 400] [--concurrency 20]`, or
`--idle-only` for the idle RSS alone (a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psutil
from capacity import (
    AUTH,
    INSTRUCTIONS,
    Children,
    children_stopped,
    make_offer,
    percentile,
    raise_nofile,
    scan_log,
)

from signaling.realtime.client_events import SessionConfig, session_payload

WARMUP = 20
SETUP_COUNT = re.compile(
    r'^callbridge_call_setup_seconds_count\{stage="session_updated"\} (\S+)$', re.M
)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def session_updated_count(client: httpx.AsyncClient) -> int:
    response = await client.get("/metrics")
    match = SETUP_COUNT.search(response.text)
    return int(float(match[1])) if match else 0


async def wait_session_ready(client: httpx.AsyncClient, call_id: str) -> None:
    async with client.stream("GET", f"/v1/calls/{call_id}/events") as response:
        async for line in response.aiter_lines():
            if line.strip() == "event: session.ready":
                return


class Sides:
    """The two clients and how each side starts one call."""

    def __init__(self, via: httpx.AsyncClient, direct: httpx.AsyncClient, offer: str) -> None:
        self.via = via
        self.direct = direct
        self.offer = offer
        session = session_payload(SessionConfig(instructions=INSTRUCTIONS), include_model=True)
        self.files = {
            "sdp": (None, offer.encode(), "application/sdp"),
            "session": (None, json.dumps(session).encode(), "application/json"),
        }
        self.via_ids: list[str] = []
        self.direct_ids: list[str] = []

    async def start_via(self) -> str:
        response = await self.via.post(
            "/v1/calls", content=self.offer, headers={"content-type": "application/sdp"}
        )
        if response.status_code != 201:
            raise RuntimeError(f"callbridge answered {response.status_code}: {response.text}")
        call_id = response.headers["location"].rsplit("/", 1)[-1]
        self.via_ids.append(call_id)
        return call_id

    async def start_direct(self) -> str:
        response = await self.direct.post("/v1/realtime/calls", files=self.files)
        if response.status_code != 201:
            raise RuntimeError(f"provider answered {response.status_code}: {response.text}")
        call_id = response.headers["location"].rsplit("/", 1)[-1]
        self.direct_ids.append(call_id)
        return call_id

    async def hang_up_all(self) -> None:
        via, self.via_ids = self.via_ids, []
        direct, self.direct_ids = self.direct_ids, []
        sem = asyncio.Semaphore(20)

        async def one(send: Callable[[], Awaitable[httpx.Response]]) -> None:
            async with sem:
                await send()

        await asyncio.gather(
            *(one(lambda c=c: self.via.delete(f"/v1/calls/{c}")) for c in via),
            *(one(lambda c=c: self.direct.post(f"/v1/realtime/calls/{c}/hangup")) for c in direct),
        )


async def serial(sides: Sides, rounds: int) -> tuple[list[float], list[float]]:
    via: list[float] = []
    direct: list[float] = []
    for n in range(WARMUP + rounds):
        began = time.perf_counter()
        await sides.start_direct()
        direct_s = time.perf_counter() - began
        began = time.perf_counter()
        call_id = await sides.start_via()
        via_s = time.perf_counter() - began
        await wait_session_ready(sides.via, call_id)
        if n >= WARMUP:
            via.append(via_s)
            direct.append(direct_s)
        if len(sides.via_ids) >= 100:
            await sides.hang_up_all()
    await sides.hang_up_all()
    return via, direct


async def burst(start: Callable[[], Awaitable[str]], count: int, concurrency: int) -> float:
    """Starts per second with `concurrency` in flight."""
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await start()

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - began)


async def cpu_per_start(
    sides: Sides, process: psutil.Process, count: int
) -> tuple[float, float, float]:
    """(CPU ms per start with idle subtracted, idle CPU %, wall seconds)."""
    await asyncio.sleep(0.5)
    idle_cpu0, idle_wall0 = cpu_seconds(process), time.perf_counter()
    await asyncio.sleep(2.0)
    idle_rate = (cpu_seconds(process) - idle_cpu0) / (time.perf_counter() - idle_wall0)
    before = await session_updated_count(sides.via)
    cpu0, wall0 = cpu_seconds(process), time.perf_counter()
    for _ in range(count):
        await sides.start_via()
    for _ in range(300):
        await asyncio.sleep(0.2)
        if await session_updated_count(sides.via) >= before + count:
            break
    else:
        raise RuntimeError("the calls' session.update was not confirmed within a minute")
    wall = time.perf_counter() - wall0
    used = cpu_seconds(process) - cpu0 - idle_rate * wall
    await sides.hang_up_all()
    return used / count * 1000, idle_rate * 100, wall


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f}"


async def main_async(args: argparse.Namespace, log_dir: Path) -> int:
    raise_nofile()
    offer = await make_offer()
    print("callbridge call-start benchmark")
    print(
        f"  os.cpu_count()={os.cpu_count()}  python {platform.python_version()}  "
        f"serial={args.serial}  burst={args.burst}  concurrency={args.concurrency}"
    )
    extra = {"CALLBRIDGE_MAX_CALLS": str(max(1000, args.burst * 2))}
    with children_stopped(Children(log_dir)) as children:
        provider, provider_url = children.provider("call-start")
        orchestrator, url = children.orchestrator("call-start", provider_url, extra)
        await provider.wait_http(f"{provider_url}/healthz")
        await orchestrator.wait_http(f"{url}/healthz")
        process = psutil.Process(orchestrator.pid)
        await asyncio.sleep(2.0)
        idle_rss_mib = process.memory_info().rss / 2**20
        if args.idle_only:
            print(f"  orchestrator RSS idle before the first call {idle_rss_mib:.1f} MiB")
            return 0
        limits = httpx.Limits(max_connections=args.concurrency + 5)
        async with (
            httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as via,
            httpx.AsyncClient(
                base_url=provider_url, timeout=30, limits=limits, headers=AUTH
            ) as direct,
        ):
            sides = Sides(via, direct, offer)
            via_s, direct_s = await serial(sides, args.serial)
            direct_rate = await burst(sides.start_direct, args.burst, args.concurrency)
            await sides.hang_up_all()
            via_rate = await burst(sides.start_via, args.burst, args.concurrency)
            await asyncio.sleep(1.0)
            await sides.hang_up_all()
            cpu_ms, idle_pct, wall = await cpu_per_start(sides, process, args.burst)
        rss_mib = process.memory_info().rss / 2**20

    print()
    print(f"serial call start, {args.serial} rounds after {WARMUP} warm-up (time to the 201):")
    print(f"  {'':<44} {'p50 ms':>8} {'p99 ms':>8}")
    rows = (
        ("direct POST to the provider (baseline)", direct_s),
        ("POST /v1/calls through callbridge", via_s),
    )
    for name, samples in rows:
        print(f"  {name:<44} {ms(percentile(samples, 50)):>8} {ms(percentile(samples, 99)):>8}")
    added = [(percentile(via_s, q) or 0.0) - (percentile(direct_s, q) or 0.0) for q in (50, 99)]
    print(f"  {'added by callbridge':<44} {ms(added[0]):>8} {ms(added[1]):>8}")
    print()
    print(f"throughput, {args.burst} starts, {args.concurrency} in flight:")
    print(f"  direct POST to the provider (baseline)       {direct_rate:>8,.0f} starts/s")
    print(f"  POST /v1/calls through callbridge            {via_rate:>8,.0f} starts/s")
    print()
    print(
        f"orchestrator CPU per call start ({args.burst} serial starts, answer + sideband join"
        " + session.update confirmed):"
    )
    print(f"  {cpu_ms:.2f} ms per start  (idle {idle_pct:.1f} % subtracted over {wall:.1f} s)")
    print(f"  orchestrator RSS idle before the first call {idle_rss_mib:.1f} MiB")
    print(f"  orchestrator RSS at the end {rss_mib:.1f} MiB")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serial", type=int, default=300, help="serial rounds")
    parser.add_argument("--burst", type=int, default=400, help="starts per throughput/CPU run")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--idle-only", action="store_true", help="measure the idle RSS only, then stop"
    )
    log_dir = Path(tempfile.mkdtemp(prefix="callbridge-call-start-"))
    code = asyncio.run(main_async(parser.parse_args(), log_dir))
    for path in sorted(log_dir.glob("*.log")):
        lines, tracebacks, found, _ = scan_log(path)
        errors = sum(found.values())
        print(f"  {path.name}: {lines} lines, {tracebacks} tracebacks, {errors} error lines")
    return code


if __name__ == "__main__":
    sys.exit(main())
