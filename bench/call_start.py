"""Call start: what callbridge adds to a provider call creation, in latency and in CPU.

Processes, all on this machine: a `callbridge provider` in no-media mode
(`CALLBRIDGE_LOCAL_MEDIA=false`: fake SDP answers, a real sideband WebSocket) and one
`callbridge serve` pointed at it (`CALLBRIDGE_PROVIDER=openai`), each in its own process.

- **Serial latency.** `--serial` rounds, one request at a time; each round sends the baseline,
  the same multipart POST (sdp + session, as callbridge sends it) straight to the provider's
  `POST /v1/realtime/calls`, then `POST /v1/calls` (application/sdp) to callbridge, and waits
  until callbridge has joined the sideband and the provider confirmed the `session.update`
  (the `session.ready` event on the call's event stream) and another 20 ms, so rounds do not
  overlap. Between the two, the same offer goes through `bare_relay.py`: the same server
  (uvicorn, uvloop, httptools) relaying it with the same provider POST (aiohttp, the form built
  per request) and nothing else, the **library floor** of the added latency. All times are to
  the 201. Added latency = p50 - direct p50 (and the same for p99).
- **Throughput.** `--burst` call starts with `--concurrency` in flight, to callbridge and, as
  the baseline, straight to the provider; starts/s is 201s per second of wall time.
- **Orchestrator CPU per start.** `--burst` starts made one at a time with nothing watching;
  once the last call's `session.update` is confirmed (the `session_updated` setup-latency count
  on `/metrics`, polled a few times), the orchestrator's CPU time (user + system, psutil)
  since the first start, less its idle CPU over the same wall time, divided by the calls:
  HTTP request, provider POST, sideband join, `session.update` and its confirmation included.
  Its baseline, the **library floor**: the provider side of the same work done in this process
  with the bare libraries callbridge uses (one aiohttp POST of the same form, then a websockets
  join without compression, the `session.update`, and reading until `session.updated`), CPU
  per call. What a start costs over it is what callbridge itself does (serving the request,
  checking the offer, the call core); on a slower machine both grow.
- **Idle RSS.** The orchestrator's RSS (psutil) once it answers `/healthz` and has sat idle for
  2 s, before any call: a `callbridge serve` with a remote provider (`CALLBRIDGE_PROVIDER=openai`
  and a URL), the only kind the control plane runs with in production. Its baseline: a bare
  Python process that has imported the same libraries (`LIBRARIES`) and nothing else.

The bench's own client is aiohttp with the form built once: it shares the two cores with the
processes it measures, so the lighter it is the more of the cores they get. Calls are hung up
(not timed) after each phase. Run:
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
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import psutil
import websockets
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

from signaling.provider import call_creation_form
from signaling.realtime.client_events import SessionConfig, session_payload

WARMUP = 20
SETTLE_S = 0.02
SETUP_COUNT = re.compile(
    r'^callbridge_call_setup_seconds_count\{stage="session_updated"\} (\S+)$', re.M
)
# What `callbridge serve` imports to run with a remote provider, imported by a bare process.
LIBRARIES = (
    "asyncio, uvloop, httptools, uvicorn, fastapi, pydantic_settings, aiohttp, websockets,"
    " orjson, prometheus_client, standardwebhooks"
)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def session_updated_count(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/metrics") as response:
        match = SETUP_COUNT.search(await response.text())
    return int(float(match[1])) if match else 0


async def wait_session_ready(http: aiohttp.ClientSession, url: str, call_id: str) -> None:
    async with http.get(f"{url}/v1/calls/{call_id}/events") as response:
        async for line in response.content:
            if line.strip() == b"event: session.ready":
                return


class Sides:
    """How each side starts one call: `POST /v1/calls` to callbridge, or the same offer (with
    the session callbridge would send) straight to the provider's `POST /v1/realtime/calls`.

    One aiohttp session sends both: the load generator shares the cores with the processes it
    measures, so it is the lightest client at hand, and the form is built once."""

    def __init__(
        self, http: aiohttp.ClientSession, url: str, provider_url: str, relay_url: str, offer: str
    ):
        self.http = http
        self.url = url
        self.provider_url = provider_url
        self.relay_url = relay_url
        self.offer = offer.encode()
        session = session_payload(SessionConfig(instructions=INSTRUCTIONS), include_model=True)
        self.session = session
        self.form, form_type = call_creation_form(offer, session)
        self.form_headers = {**AUTH, "Content-Type": form_type}
        self.via_ids: list[str] = []
        self.direct_ids: list[str] = []

    async def _post_offer(self, url: str) -> str:
        async with self.http.post(
            f"{url}/v1/calls", data=self.offer, headers={"Content-Type": "application/sdp"}
        ) as response:
            if response.status != 201:
                raise RuntimeError(f"{url} answered {response.status}: {await response.text()}")
            await response.read()
            return response.headers["Location"].rsplit("/", 1)[-1]

    async def start_via(self) -> str:
        call_id = await self._post_offer(self.url)
        self.via_ids.append(call_id)
        return call_id

    async def start_relayed(self) -> str:
        """A call created through the bare relay; hung up at the provider like a direct one."""
        call_id = await self._post_offer(self.relay_url)
        self.direct_ids.append(call_id)
        return call_id

    async def create_at_provider(self) -> str:
        async with self.http.post(
            f"{self.provider_url}/v1/realtime/calls", data=self.form, headers=self.form_headers
        ) as response:
            if response.status != 201:
                raise RuntimeError(f"provider answered {response.status}: {await response.text()}")
            await response.read()
            return response.headers["Location"].rsplit("/", 1)[-1]

    async def start_direct(self) -> str:
        call_id = await self.create_at_provider()
        self.direct_ids.append(call_id)
        return call_id

    async def hang_up_all(self) -> None:
        via, self.via_ids = self.via_ids, []
        direct, self.direct_ids = self.direct_ids, []
        sem = asyncio.Semaphore(20)

        async def one(method: str, url: str) -> None:
            async with sem, self.http.request(method, url, headers=AUTH) as response:
                await response.read()

        await asyncio.gather(
            *(one("DELETE", f"{self.url}/v1/calls/{c}") for c in via),
            *(one("POST", f"{self.provider_url}/v1/realtime/calls/{c}/hangup") for c in direct),
        )


async def timed(start: Callable[[], Awaitable[str]]) -> tuple[float, str]:
    """(seconds to the 201, call id)."""
    began = time.perf_counter()
    call_id = await start()
    return time.perf_counter() - began, call_id


async def serial(sides: Sides, rounds: int) -> tuple[list[float], list[float], list[float]]:
    """Times to the 201 (callbridge, direct, bare relay), one round after another."""
    via: list[float] = []
    direct: list[float] = []
    relayed: list[float] = []
    for n in range(WARMUP + rounds):
        direct_s, _ = await timed(sides.start_direct)
        relayed_s, _ = await timed(sides.start_relayed)
        via_s, call_id = await timed(sides.start_via)
        await wait_session_ready(sides.http, sides.url, call_id)
        # What the call still does once set up (and the closing of its event stream) is over
        # before the next round's timings begin.
        await asyncio.sleep(SETTLE_S)
        if n >= WARMUP:
            via.append(via_s)
            direct.append(direct_s)
            relayed.append(relayed_s)
        if len(sides.via_ids) >= 100:
            await sides.hang_up_all()
    await sides.hang_up_all()
    return via, direct, relayed


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
    before = await session_updated_count(sides.http, sides.url)
    cpu0, wall0 = cpu_seconds(process), time.perf_counter()
    for _ in range(count):
        await sides.start_via()
    for _ in range(300):
        await asyncio.sleep(0.2)
        if await session_updated_count(sides.http, sides.url) >= before + count:
            break
    else:
        raise RuntimeError("the calls' session.update was not confirmed within a minute")
    wall = time.perf_counter() - wall0
    used = cpu_seconds(process) - cpu0 - idle_rate * wall
    await sides.hang_up_all()
    return used / count * 1000, idle_rate * 100, wall


async def library_floor(sides: Sides, count: int) -> float:
    """CPU ms per call, in this process, of the provider work of a call start done with the
    bare libraries callbridge uses: the call-creation POST (aiohttp), then the sideband join
    (websockets, no compression), its `session.update`, and reading until `session.updated`."""
    update = json.dumps({"type": "session.update", "session": sides.session})
    sideband = "ws" + sides.provider_url.removeprefix("http") + "/v1/realtime?call_id="
    # One context for every join, as callbridge has: websockets would make one per connection.
    tls = ssl.create_default_context() if sideband.startswith("wss:") else None
    links: list[websockets.ClientConnection] = []

    async def start() -> None:
        call_id = await sides.start_direct()
        link = await websockets.connect(
            sideband + call_id, additional_headers=AUTH, compression=None, proxy=None, ssl=tls
        )
        links.append(link)
        await link.send(update)
        while json.loads(await link.recv())["type"] != "session.updated":
            pass

    for _ in range(WARMUP):
        await start()
    began = time.process_time()
    for _ in range(count):
        await start()
    used = time.process_time() - began
    for link in links:
        await link.close()
    await sides.hang_up_all()
    return used / count * 1000


def libraries_rss_mib() -> float:
    """RSS of a bare Python process once it has imported `LIBRARIES`."""
    code = f"import {LIBRARIES}\nprint(int(open('/proc/self/statm').read().split()[1]) * 4096)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.strip()) / 2**20


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f}"


async def main_async(args: argparse.Namespace, log_dir: Path) -> int:
    raise_nofile()
    offer = await make_offer()
    print("callbridge call-start benchmark")
    print(
        f"  os.cpu_count()={os.cpu_count()}  python {platform.python_version()}  "
        f"serial={args.serial}  burst={args.burst}  concurrency={args.concurrency}"
        f"  provider over {'TLS (https, wss)' if args.tls else 'plain http and ws'}"
    )
    extra = {"CALLBRIDGE_MAX_CALLS": str(max(1000, args.burst * 2))}
    floor_rss_mib = libraries_rss_mib()
    with children_stopped(Children(log_dir, tls=args.tls)) as children:
        provider, provider_url = children.provider("call-start")
        orchestrator, url = children.orchestrator("call-start", provider_url, extra)
        await provider.wait_http(f"{provider_url}/healthz")
        await orchestrator.wait_http(f"{url}/healthz")
        process = psutil.Process(orchestrator.pid)
        await asyncio.sleep(2.0)
        idle_rss_mib = process.memory_info().rss / 2**20
        if args.idle_only:
            print(f"  orchestrator RSS idle before the first call {idle_rss_mib:.1f} MiB")
            print(f"  the same libraries imported by a bare process {floor_rss_mib:.1f} MiB")
            return 0
        relay, relay_url = children.bare_relay("call-start", provider_url)
        await relay.wait_http(relay_url)
        # Made now: with --tls, `SSL_CERT_FILE` names the provider's certificate only from here on.
        # Idle connections are let go before uvicorn's 5 s, which would close one under a POST.
        connector = aiohttp.TCPConnector(
            limit=args.concurrency + 5, keepalive_timeout=3, ssl=ssl.create_default_context()
        )
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            sides = Sides(http, url, provider_url, relay_url, offer)
            via_s, direct_s, relayed_s = await serial(sides, args.serial)
            direct_rate = await burst(sides.start_direct, args.burst, args.concurrency)
            await sides.hang_up_all()
            via_rate = await burst(sides.start_via, args.burst, args.concurrency)
            await asyncio.sleep(1.0)
            await sides.hang_up_all()
            cpu_ms, idle_pct, wall = await cpu_per_start(sides, process, args.burst)
            floor_ms = await library_floor(sides, args.burst)
        rss_mib = process.memory_info().rss / 2**20

    print()
    print(f"serial call start, {args.serial} rounds after {WARMUP} warm-up (time to the 201):")
    print(f"  {'':<44} {'p50 ms':>8} {'p99 ms':>8}")
    rows = (
        ("direct POST to the provider (baseline)", direct_s),
        ("through the bare relay (library floor)", relayed_s),
        ("POST /v1/calls through callbridge", via_s),
    )
    for name, samples in rows:
        print(f"  {name:<44} {ms(percentile(samples, 50)):>8} {ms(percentile(samples, 99)):>8}")
    for name, over in (("added by the bare relay", relayed_s), ("added by callbridge", via_s)):
        added = [(percentile(over, q) or 0.0) - (percentile(direct_s, q) or 0.0) for q in (50, 99)]
        print(f"  {name:<44} {ms(added[0]):>8} {ms(added[1]):>8}")
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
    print(
        f"  {floor_ms:.2f} ms per call for the provider work alone with the bare libraries"
        " (aiohttp POST; websockets join, session.update, session.updated)"
        f": callbridge {cpu_ms / floor_ms:.2f}x"
    )
    print(f"  orchestrator RSS idle before the first call {idle_rss_mib:.1f} MiB")
    print(
        f"  the same libraries imported by a bare process {floor_rss_mib:.1f} MiB"
        f" ({idle_rss_mib - floor_rss_mib:+.1f} MiB)"
    )
    print(f"  orchestrator RSS at the end {rss_mib:.1f} MiB")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serial", type=int, default=300, help="serial rounds")
    parser.add_argument("--burst", type=int, default=400, help="starts per throughput/CPU run")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--tls", action="store_true", help="the provider over https and wss, as the real one"
    )
    parser.add_argument(
        "--idle-only", action="store_true", help="measure the idle RSS only, then stop"
    )
    log_dir = Path(tempfile.mkdtemp(prefix="callbridge-call-start-"))
    code = asyncio.run(main_async(parser.parse_args(), log_dir))
    for path in sorted(log_dir.glob("*.log")):
        lines, tracebacks, found, _ = scan_log(path)
        errors = sum(found.values())
        print(
            f"  {path.name}: {lines} lines, {tracebacks} tracebacks, {errors} error/warning lines"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
