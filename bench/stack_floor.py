"""Stack floor: what the libraries alone cost at idle, for the libraries callbridge uses and
for the alternatives, beside the CPU each HTTP client spends on a provider call creation.

Issue 13 asks for an orchestrator idling at 60 MB (57.2 MiB) of RSS or less. `call_start.py`
shows the libraries callbridge imports take about that much before any of its own code runs.
This bench measures the choice behind that, in one run:

- **Idle RSS of each library set.** A bare Python process imports the set and nothing else; its
  RSS is read from `/proc/self/statm` (median of `--repeat` processes). The sets: the ones
  `callbridge serve` imports with a remote provider (`call_start.LIBRARIES`, the baseline), and
  the same with Starlette instead of FastAPI, with httpx instead of aiohttp, and with both.
- **callbridge's own share.** A `callbridge serve` with a remote provider (the stand-in, in its
  own process), idle for 2 s after `/healthz` first answers, less the baseline set. Added to
  each set's figure, it projects what the orchestrator would idle at on that set (a projection:
  FastAPI's route models, part of the share, would go with FastAPI).
- **Client CPU per provider call creation.** In this process, `--posts` serial POSTs of the
  call-creation form (SDP offer plus session, multipart, as callbridge sends it) to the
  stand-in's `POST /v1/realtime/calls`, over one keep-alive connection, with aiohttp and with
  httpx; the process CPU time (user + system) per POST, after 20 warm-up POSTs. The stand-in's
  work is in its own process; this is the client's CPU alone.

Run: `.venv/bin/python bench/stack_floor.py [--repeat 3] [--posts 500]`.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import psutil
from call_start import LIBRARIES
from capacity import AUTH, INSTRUCTIONS, Children, children_stopped, make_offer

from signaling.provider import call_creation_form
from signaling.realtime.client_events import SessionConfig, session_payload

GOAL_MIB = 60e6 / 2**20
WARMUP = 20
IDLE_S = 2.0
STARLETTE = "starlette.applications, starlette.routing"


def library_sets() -> dict[str, str]:
    """Each set's name and the modules a bare process imports for it."""
    names = [name.strip() for name in LIBRARIES.split(",")]

    def swapped(old: str, new: str, modules: list[str]) -> list[str]:
        return [new if name == old else name for name in modules]

    no_fastapi = swapped("fastapi", STARLETTE, names)
    return {
        "as shipped: FastAPI, aiohttp": ", ".join(names),
        "Starlette instead of FastAPI": ", ".join(no_fastapi),
        "httpx instead of aiohttp": ", ".join(swapped("aiohttp", "httpx", names)),
        "Starlette and httpx": ", ".join(swapped("aiohttp", "httpx", no_fastapi)),
    }


def set_rss_mib(modules: str, repeat: int) -> float:
    """Median RSS of `repeat` bare processes once each has imported `modules`."""
    code = f"import {modules}\nprint(int(open('/proc/self/statm').read().split()[1]) * 4096)"
    samples = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        done.check_returncode()
        samples.append(int(done.stdout.strip()) / 2**20)
    return statistics.median(samples)


async def client_cpu_ms(
    post: Callable[[], Awaitable[str]], hang_up: Callable[[list[str]], Awaitable[None]], n: int
) -> float:
    """CPU ms of this process per `post()`, serial, after `WARMUP` posts."""
    created = [await post() for _ in range(WARMUP)]
    began = time.process_time()
    for _ in range(n):
        created.append(await post())
    used = time.process_time() - began
    await hang_up(created)
    return used / n * 1000


async def aiohttp_cpu_ms(provider_url: str, form: bytes, form_type: str, n: int) -> float:
    headers = {**AUTH, "Content-Type": form_type}
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=3)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def post() -> str:
            url = f"{provider_url}/v1/realtime/calls"
            async with http.post(url, data=form, headers=headers) as answer:
                await answer.read()
                return answer.headers["Location"].rsplit("/", 1)[-1]

        async def hang_up(calls: list[str]) -> None:
            for call_id in calls:
                url = f"{provider_url}/v1/realtime/calls/{call_id}/hangup"
                async with http.post(url, headers=AUTH) as answer:
                    await answer.read()

        return await client_cpu_ms(post, hang_up, n)


async def httpx_cpu_ms(provider_url: str, form: bytes, form_type: str, n: int) -> float:
    headers = {**AUTH, "Content-Type": form_type}
    limits = httpx.Limits(max_connections=1, keepalive_expiry=3)
    async with httpx.AsyncClient(limits=limits) as http:

        async def post() -> str:
            url = f"{provider_url}/v1/realtime/calls"
            answer = await http.post(url, content=form, headers=headers)
            return answer.headers["Location"].rsplit("/", 1)[-1]

        async def hang_up(calls: list[str]) -> None:
            for call_id in calls:
                url = f"{provider_url}/v1/realtime/calls/{call_id}/hangup"
                await http.post(url, headers=AUTH)

        return await client_cpu_ms(post, hang_up, n)


async def main_async(args: argparse.Namespace, log_dir: Path) -> None:
    print("callbridge stack floor benchmark")
    print(
        f"  python {platform.python_version()}  repeat={args.repeat}  posts={args.posts}"
        f"  goal: idle RSS <= {GOAL_MIB:.1f} MiB (60 MB)"
    )
    rss = {name: set_rss_mib(modules, args.repeat) for name, modules in library_sets().items()}
    baseline = rss["as shipped: FastAPI, aiohttp"]
    offer = await make_offer()
    session = session_payload(SessionConfig(instructions=INSTRUCTIONS), include_model=True)
    form, form_type = call_creation_form(offer, session)
    with children_stopped(Children(log_dir)) as children:
        provider, provider_url = children.provider("stack-floor")
        orchestrator, url = children.orchestrator("stack-floor", provider_url)
        await provider.wait_http(f"{provider_url}/healthz")
        await orchestrator.wait_http(f"{url}/healthz")
        await asyncio.sleep(IDLE_S)
        serve_mib = psutil.Process(orchestrator.pid).memory_info().rss / 2**20
        # Alternated, twice each, so that a drift in the machine's speed falls on both.
        cpu: dict[str, list[float]] = {"aiohttp": [], "httpx": []}
        for _ in range(2):
            cpu["aiohttp"].append(await aiohttp_cpu_ms(provider_url, form, form_type, args.posts))
            cpu["httpx"].append(await httpx_cpu_ms(provider_url, form, form_type, args.posts))
    own = serve_mib - baseline
    print()
    print(f"callbridge serve idle (remote provider): {serve_mib:.1f} MiB")
    print(f"  its own share over the shipped set: {own:+.1f} MiB")
    print()
    print(f"  {'library set':<32} {'bare MiB':>9} {'vs shipped':>11} {'+ own share':>12}  goal")
    for name, mib in rss.items():
        projected = mib + own
        met = "met" if projected <= GOAL_MIB else "not met"
        print(f"  {name:<32} {mib:>9.1f} {mib - baseline:>+11.1f} {projected:>12.1f}  {met}")
    print()
    print(f"client CPU per call-creation POST ({args.posts} serial, best of 2 alternated runs):")
    floor = min(cpu["aiohttp"])
    for name, runs in cpu.items():
        print(f"  {name:<8} {min(runs):.3f} ms  ({min(runs) / floor:.2f}x aiohttp)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="bare processes per library set")
    parser.add_argument("--posts", type=int, default=500, help="timed POSTs per client run")
    log_dir = Path(tempfile.mkdtemp(prefix="callbridge-stack-floor-"))
    asyncio.run(main_async(parser.parse_args(), log_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
