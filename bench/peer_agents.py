"""The peer: N calls held by callbridge and by openai-agents `RealtimeSession`s, side by side.

A user who does not run callbridge would create the call at the provider and attach the
openai-agents SDK's `RealtimeSession` to it by call id (`model_config={"call_id": ...}`), which
joins the same sideband WebSocket and sends its `session.update`. Both sides, each against its own
fresh `callbridge provider` in no-media mode (fake SDP answers, a real sideband):

- **callbridge** — one `callbridge serve` (`CALLBRIDGE_PROVIDER=openai`); this script POSTs N
  offers to `/v1/calls` (`--concurrency` in flight) and waits until every call's `session.update`
  is confirmed (the `session_updated` setup count on `/metrics`).
- **openai-agents** — one Python process (this file with `--agents-host`) that POSTs the same N
  call creations to the provider (httpx, multipart sdp + session, as callbridge sends them),
  attaches a `RealtimeSession` (a `RealtimeAgent` with the same instructions, tracing off) to
  each by call id, and reads every session's events in a task, as an application must.

For each side, from psutil: RSS after a warm-up of 3 calls that are then ended (idle), RSS with
the N calls held (after `--hold` seconds), CPU time (user + system) from the first start until
every call is set up, and CPU over the hold. Per call = (held - idle) / N and CPU / N.

Run: `.venv/bin/python bench/peer_agents.py [--n 1000] [--hold 5] [--concurrency 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from capacity import (
    API_KEY,
    AUTH,
    INSTRUCTIONS,
    Children,
    children_stopped,
    make_offer,
    raise_nofile,
)

from signaling.realtime.client_events import SessionConfig, session_payload

WARMUP = 3
SETUP_COUNT = 'callbridge_call_setup_seconds_count{stage="session_updated"}'


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def rss_kib(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 1024


async def bounded(count: int, concurrency: int, work: Any) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await work(i)

    await asyncio.gather(*(one(i) for i in range(count)))


# --- openai-agents host (child process) -------------------------------------------------------


async def agents_host(
    provider_url: str, offer: str, n: int, hold_s: float, concurrency: int
) -> None:
    """Create and attach n calls with openai-agents; print the figures as one JSON line."""
    from agents import set_tracing_disabled
    from agents.realtime import RealtimeAgent, RealtimeRunner, RealtimeSession

    set_tracing_disabled(True)
    me = psutil.Process()
    agent: RealtimeAgent[Any] = RealtimeAgent(name="assistant", instructions=INSTRUCTIONS)
    ws_base = "ws" + provider_url.removeprefix("http") + "/v1/realtime?call_id="
    session = session_payload(SessionConfig(instructions=INSTRUCTIONS), include_model=True)
    files = {
        "sdp": (None, offer.encode(), "application/sdp"),
        "session": (None, json.dumps(session).encode(), "application/json"),
    }
    held: list[tuple[str, RealtimeSession, asyncio.Task[None]]] = []
    events = 0

    async def read(rt: RealtimeSession) -> None:
        nonlocal events
        async for _ in rt:
            events += 1

    async with httpx.AsyncClient(
        base_url=provider_url,
        headers=AUTH,
        timeout=30,
        limits=httpx.Limits(max_connections=concurrency),
    ) as client:

        async def attach(i: int) -> None:
            response = await client.post("/v1/realtime/calls", files=files)
            response.raise_for_status()
            call_id = response.headers["location"].rsplit("/", 1)[-1]
            # A runner holds one model connection, so each call gets its own.
            rt = await RealtimeRunner(agent).run(
                model_config={"call_id": call_id, "url": ws_base + call_id, "api_key": API_KEY}
            )
            await rt.enter()
            held.append((call_id, rt, asyncio.create_task(read(rt))))

        async def end_all() -> None:
            calls = list(held)
            held.clear()
            for _, rt, reader in calls:
                await rt.close()
                reader.cancel()
            for call_id, _, _ in calls:
                await client.post(f"/v1/realtime/calls/{call_id}/hangup")

        await bounded(WARMUP, 1, attach)
        await asyncio.sleep(0.5)
        await end_all()
        await asyncio.sleep(1.0)
        idle = rss_kib(me)
        cpu0 = cpu_seconds(me)
        began = time.perf_counter()
        await bounded(n, concurrency, attach)
        # The session.update is confirmed within milliseconds; callbridge's side waits for it.
        await asyncio.sleep(0.5)
        setup_cpu = cpu_seconds(me) - cpu0
        wall = time.perf_counter() - began
        cpu1 = cpu_seconds(me)
        await asyncio.sleep(hold_s)
        hold_cpu = cpu_seconds(me) - cpu1
        held_rss = rss_kib(me)
        attached = len(held)
        await end_all()
    result = {
        "attached": attached,
        "rss_idle_kib": idle,
        "rss_held_kib": held_rss,
        "setup_cpu_s": setup_cpu,
        "setup_wall_s": wall,
        "hold_cpu_s": hold_cpu,
        "events": events,
    }
    print(json.dumps(result), flush=True)


def run_agents_side(
    children: Children, offer_path: Path, args: argparse.Namespace
) -> dict[str, Any]:
    provider, provider_url = children.provider("agents")
    asyncio.run(provider.wait_http(f"{provider_url}/healthz"))
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--agents-host",
        provider_url,
        "--offer",
        str(offer_path),
        "--n",
        str(args.n),
        "--hold",
        str(args.hold),
        "--concurrency",
        str(args.concurrency),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    provider.stop()
    if done.returncode != 0:
        raise RuntimeError(f"the openai-agents host failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# --- callbridge side --------------------------------------------------------------------------


async def setup_count(client: httpx.AsyncClient) -> int:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(SETUP_COUNT):
            return int(float(line.split()[-1]))
    return 0


async def run_callbridge_side(
    children: Children, offer: str, args: argparse.Namespace
) -> dict[str, Any]:
    provider, provider_url = children.provider("callbridge")
    extra = {"CALLBRIDGE_MAX_CALLS": str(args.n + 100)}
    orchestrator, url = children.orchestrator("peer", provider_url, extra)
    await provider.wait_http(f"{provider_url}/healthz")
    await orchestrator.wait_http(f"{url}/healthz")
    process = psutil.Process(orchestrator.pid)
    ids: list[str] = []
    failures: list[str] = []
    limits = httpx.Limits(max_connections=args.concurrency + 2)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def start(i: int) -> None:
            response = await client.post(
                "/v1/calls", content=offer, headers={"content-type": "application/sdp"}
            )
            if response.status_code != 201:
                failures.append(f"{response.status_code}: {response.text[:160]}")
                return
            ids.append(response.headers["location"].rsplit("/", 1)[-1])

        async def wait_set_up(count: int) -> None:
            for _ in range(600):
                await asyncio.sleep(0.1)
                if await setup_count(client) >= count:
                    return
            raise RuntimeError("calls were not set up within a minute")

        async def end_all() -> None:
            calls = list(ids)
            ids.clear()
            await bounded(
                len(calls), args.concurrency, lambda i: client.delete(f"/v1/calls/{calls[i]}")
            )

        await bounded(WARMUP, 1, start)
        await wait_set_up(WARMUP)
        await end_all()
        await asyncio.sleep(1.0)
        idle = rss_kib(process)
        cpu0 = cpu_seconds(process)
        began = time.perf_counter()
        await bounded(args.n, args.concurrency, start)
        await wait_set_up(WARMUP + args.n - len(failures))
        setup_cpu = cpu_seconds(process) - cpu0
        wall = time.perf_counter() - began
        cpu1 = cpu_seconds(process)
        await asyncio.sleep(args.hold)
        hold_cpu = cpu_seconds(process) - cpu1
        held_rss = rss_kib(process)
        attached = len(ids)
        await end_all()
    return {
        "attached": attached,
        "rss_idle_kib": idle,
        "rss_held_kib": held_rss,
        "setup_cpu_s": setup_cpu,
        "setup_wall_s": wall,
        "hold_cpu_s": hold_cpu,
        "failures": failures,
    }


# --- report -----------------------------------------------------------------------------------


def report(args: argparse.Namespace, via: dict[str, Any], peer: dict[str, Any]) -> None:
    def per_call_kib(side: dict[str, Any]) -> float:
        return float(side["rss_held_kib"] - side["rss_idle_kib"]) / max(1, side["attached"])

    def per_call_ms(side: dict[str, Any], key: str) -> float:
        return float(side[key]) * 1000 / max(1, side["attached"])

    rows = (
        ("calls held", lambda s: f"{s['attached']}"),
        ("idle RSS MiB (after warm-up)", lambda s: f"{s['rss_idle_kib'] / 1024:.1f}"),
        ("held RSS MiB", lambda s: f"{s['rss_held_kib'] / 1024:.1f}"),
        ("RSS per held call KiB", lambda s: f"{per_call_kib(s):.1f}"),
        ("CPU per call set-up ms", lambda s: f"{per_call_ms(s, 'setup_cpu_s'):.2f}"),
        ("set-up wall s", lambda s: f"{s['setup_wall_s']:.1f}"),
        (
            f"CPU per held call over {args.hold:g} s, ms",
            lambda s: f"{per_call_ms(s, 'hold_cpu_s'):.3f}",
        ),
    )
    print()
    print(f"{args.n} calls, {args.concurrency} set-ups in flight, each side one process")
    print(f"  {'':<40} {'callbridge':>12} {'openai-agents':>14} {'ratio':>7}")
    for name, cell in rows:
        left, right = cell(via), cell(peer)
        try:
            ratio = f"{float(left) / float(right):.2f}"
        except (ValueError, ZeroDivisionError):
            ratio = "-"
        print(f"  {name:<40} {left:>12} {right:>14} {ratio:>7}")
    print(f"  (openai-agents sessions received {peer.get('events', 0)} events)")
    failures = via.get("failures") or []
    if failures:
        print(f"  callbridge refused {len(failures)} starts, e.g. {failures[0]}")


async def main_async(args: argparse.Namespace, log_dir: Path) -> None:
    raise_nofile()
    offer = await make_offer()
    offer_path = log_dir / "offer.sdp"
    offer_path.write_text(offer)
    print("callbridge vs openai-agents RealtimeSession, calls held")
    print(
        f"  os.cpu_count()={os.cpu_count()}  python {platform.python_version()}  n={args.n}  "
        f"hold={args.hold:g} s  concurrency={args.concurrency}"
        f"  provider over {'TLS (https, wss)' if args.tls else 'plain http and ws'}"
    )
    with children_stopped(Children(log_dir, tls=args.tls)) as children:
        peer = await asyncio.to_thread(run_agents_side, children, offer_path, args)
        via = await run_callbridge_side(children, offer, args)
    report(args, via, peer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1000, help="calls held by each side")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds the calls are held")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--tls", action="store_true", help="the providers over https and wss, as the real one"
    )
    parser.add_argument("--agents-host", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--offer", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agents_host:
        offer = args.offer.read_text()
        asyncio.run(agents_host(args.agents_host, offer, args.n, args.hold, args.concurrency))
        return 0
    log_dir = Path(tempfile.mkdtemp(prefix="callbridge-peer-"))
    asyncio.run(main_async(args, log_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
