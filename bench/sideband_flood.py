"""Sideband flood: one call's provider sends events as fast as it can; do other calls suffer?

Three processes: `callbridge serve` (the service), a flooding provider (this script with
`--provider-port`, FastAPI on uvicorn) and this script as the client. Two calls are started.
The client first measures `GET /v1/calls/{quiet}` latency with no flood (baseline), then tells
the provider to push `--events` frames (transcript deltas over many items, a few unknown event
types) into the other call's sideband, and measures the same GET while the service works through
them. The provider encodes the frames before the flood and writes them straight to the
connection's transport (uvicorn's sans-I/O websockets protocol underneath Starlette's
`WebSocket`), so that the provider is not what limits the rate. Reported, from one run:

- events/s the service applied (from its `callbridge_provider_events_total`, from the flood's
  first frame to the service having counted every one);
- the service's CPU seconds over the flood (from /proc), its CPU share, the CPU per event, and
  events per service CPU second ("per core"), the last two also without the CPU the GET probes
  and metric polls cost (measured over the baseline, with no flood);
- beside it, the same frames through `CallState.feed_raw` alone in this process (the core
  without any I/O, best of 3): the baseline the whole call path is compared with;
- p50/p99 of GET on the quiet call, with no flood and during the flood.

Run: `.venv/bin/python bench/sideband_flood.py [--events 200000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from fastapi import FastAPI, Response, WebSocket
from offers import make_offer

from signaling.realtime import CallState
from signaling.realtime.client_events import SessionConfig

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
ANSWER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
EVENTS_METRIC = re.compile(r'^callbridge_provider_events_total\{type="([^"]+)"\} (\S+)$', re.M)


# --- the flood ---------------------------------------------------------------------------------


def flood_frames(n: int) -> list[str]:
    """`n` provider events: transcript deltas, 50 per item, and every 500th an unknown type."""
    frames = []
    for i in range(n):
        if i % 500 == 499:
            frames.append(json.dumps({"type": f"made.up.kind_{i}"}))
        else:
            delta = {"item_id": f"item_{i // 50}", "delta": f"word{i} "}
            frames.append(json.dumps({"type": "response.output_audio_transcript.delta", **delta}))
    return frames


def text_frame(text: str) -> bytes:
    """`text` as one unmasked WebSocket text frame, as a server sends it (RFC 6455 §5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload


def core_rate(n: int, runs: int = 3) -> float:
    """Events/s of `CallState.feed_raw` alone over the flood's frames, best of `runs`."""
    frames = flood_frames(n)
    best = float("inf")
    for _ in range(runs):
        state = CallState("rtc_flood0", SessionConfig())
        state.start(time.time())
        state.link_opened(time.time())
        started = time.process_time()
        for raw in frames:
            state.feed_raw(raw, time.time())
        best = min(best, time.process_time() - started)
    return n / best


# --- the flooding provider (child process) ----------------------------------------------------


def run_provider(port: int) -> None:
    """A provider that creates calls and floods a sideband on `POST /flood/{call_id}?n=N`."""
    app = FastAPI()
    sockets: dict[str, WebSocket] = {}
    created: list[str] = []
    prepared: dict[str, bytes] = {}
    transports: dict[str, asyncio.Transport] = {}

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            # uvicorn's protocol object for this connection: whole frames written to its
            # transport interleave safely with the pongs it writes itself.
            call_id = dict(parse_qsl(scope["query_string"].decode())).get("call_id", "")
            transports[call_id] = send.__self__.transport
        await app(scope, receive, send)

    @app.post("/v1/realtime/calls")
    async def create() -> Response:
        call_id = f"rtc_flood{len(created)}"
        created.append(call_id)
        location = {"Location": f"/v1/realtime/calls/{call_id}"}
        return Response(ANSWER, status_code=201, media_type="application/sdp", headers=location)

    @app.post("/v1/realtime/calls/{call_id}/hangup")
    async def hangup(call_id: str) -> Response:
        return Response(status_code=200)

    @app.post("/prepare/{call_id}")
    async def prepare(call_id: str, n: int) -> dict[str, int]:
        prepared[call_id] = b"".join(text_frame(frame) for frame in flood_frames(n))
        return {"bytes": len(prepared[call_id])}

    @app.post("/flood/{call_id}")
    async def flood(call_id: str) -> dict[str, float]:
        started = time.time()
        transports[call_id].write(prepared.pop(call_id))
        return {"started": started}

    @app.websocket("/v1/realtime")
    async def sideband(websocket: WebSocket) -> None:
        call_id = websocket.query_params.get("call_id", "")
        await websocket.accept()
        sockets[call_id] = websocket
        await websocket.send_text(json.dumps({"type": "session.created", "session": {}}))
        with contextlib.suppress(Exception):
            while True:
                event = json.loads(await websocket.receive_text())
                if event.get("type") == "session.update":
                    reply = {"type": "session.updated", "session": {"id": f"sess_{call_id}"}}
                    await websocket.send_text(json.dumps(reply))

    uvicorn.run(
        asgi,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        ws_max_size=1 << 24,
    )


# --- helpers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds `pid` has used."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


async def wait_http(client: httpx.AsyncClient, url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited early")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(url)).status_code < 500:
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(url)


async def events_counted(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    return sum(float(v) for _, v in EVENTS_METRIC.findall(text))


async def probe(client: httpx.AsyncClient, path: str, until: asyncio.Event) -> list[float]:
    """GET `path` back to back until `until` is set; latencies in ms."""
    latencies: list[float] = []
    while not until.is_set():
        started = time.perf_counter()
        response = await client.get(path)
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        await asyncio.sleep(0.02)
    return latencies


# --- the run ----------------------------------------------------------------------------------


def spawn(provider_port: int, service_port: int) -> tuple[subprocess.Popen[bytes], ...]:
    """The flooding provider and `callbridge serve`, logging to a temporary file."""
    log = Path(tempfile.mkdtemp(prefix="flood-")) / "children.log"
    with log.open("ab") as sink:
        provider = subprocess.Popen(
            [sys.executable, __file__, "--provider-port", str(provider_port)],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        env = {
            **os.environ,
            "CALLBRIDGE_PROVIDER": "openai",
            "CALLBRIDGE_PROVIDER_URL": f"http://127.0.0.1:{provider_port}",
            "CALLBRIDGE_API_KEY": "sk-bench-flood",
            "CALLBRIDGE_PORT": str(service_port),
            "CALLBRIDGE_EMBEDDED_WORKER": "false",
            "CALLBRIDGE_LOG_LEVEL": "WARNING",
            "CALLBRIDGE_IDLE_TIMEOUT_S": "3600",
            # The provider's pong queues behind the flood's backlog: with the default 20 s
            # keepalive the service would drop and rejoin the link mid-flood, losing the rest.
            "CALLBRIDGE_SIDEBAND_PING_INTERVAL_S": "600",
        }
        service = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return provider, service


async def run(events: int, baseline_s: float) -> dict[str, Any]:
    provider_port, service_port = free_port(), free_port()
    provider, service = spawn(provider_port, service_port)
    try:
        base = f"http://127.0.0.1:{service_port}"
        async with (
            httpx.AsyncClient(base_url=base, timeout=60) as client,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{provider_port}", timeout=600) as prov,
        ):
            await wait_http(prov, "/docs", provider)
            await wait_http(client, "/healthz", service)
            offer = await make_offer()
            ids = []
            for _ in range(2):
                response = await client.post(
                    "/v1/calls", content=offer, headers={"content-type": "application/sdp"}
                )
                response.raise_for_status()
                ids.append(response.headers["location"].rsplit("/", 1)[1])
            flooded, quiet = ids
            for _ in range(100):
                record = (await client.get(f"/v1/calls/{flooded}")).json()
                if record["provider_session_id"]:
                    break
                await asyncio.sleep(0.1)

            # The same probing and polling as during the flood, with no flood: the service CPU
            # they cost per second is what the flood's figures are also given without.
            stop = asyncio.Event()
            cpu_before, started = cpu_s(service.pid), time.perf_counter()
            baseline_task = asyncio.create_task(probe(client, f"/v1/calls/{quiet}", stop))
            while time.perf_counter() - started < baseline_s:
                await asyncio.sleep(0.25)
                await events_counted(client)
            idle_cpu_rate = (cpu_s(service.pid) - cpu_before) / (time.perf_counter() - started)
            stop.set()
            baseline = await baseline_task

            await prov.post(f"/prepare/{flooded}", params={"n": events})
            before = await events_counted(client)
            cpu_before, started = cpu_s(service.pid), time.perf_counter()
            stop = asyncio.Event()
            during_task = asyncio.create_task(probe(client, f"/v1/calls/{quiet}", stop))
            flood_task = asyncio.create_task(prov.post(f"/flood/{flooded}"))
            counted, stalled = 0.0, 0
            while counted < events and stalled < 40:
                await asyncio.sleep(0.25)
                now_counted = await events_counted(client) - before
                stalled = stalled + 1 if now_counted == counted and flood_task.done() else 0
                counted = now_counted
            elapsed = time.perf_counter() - started
            cpu_used = cpu_s(service.pid) - cpu_before
            stop.set()
            during = await during_task
            await flood_task
            record = (await client.get(f"/v1/calls/{flooded}")).json()
        return {
            "events": int(counted),
            "elapsed_s": elapsed,
            "cpu_s": cpu_used,
            "idle_cpu_s": idle_cpu_rate * elapsed,
            "baseline": baseline,
            "during": during,
            "flooded_state": record["state"],
            "limits_reached": record.get("limits_reached"),
        }
    finally:
        for proc in (service, provider):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    """Run the flood and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--baseline-s", type=float, default=5.0)
    parser.add_argument("--provider-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.provider_port:
        run_provider(args.provider_port)
        return
    result = asyncio.run(run(args.events, args.baseline_s))
    core = core_rate(args.events)
    base, during = result["baseline"], result["during"]
    print(f"sideband flood: {result['events']:,} events into one call ({os.cpu_count()} CPUs)")
    rate = result["events"] / result["elapsed_s"]
    print(f"  applied in {result['elapsed_s']:.2f} s: {rate:,.0f} events/s")
    cpu_s = result["cpu_s"]
    print(
        f"  service CPU {cpu_s:.2f} s over the flood"
        f" ({100 * cpu_s / result['elapsed_s']:.0f}% of one core):"
        f" {1e6 * cpu_s / result['events']:.1f} us per event"
    )
    net_s = cpu_s - result["idle_cpu_s"]
    print(
        f"  of which {result['idle_cpu_s']:.2f} s the GET probes and metric polls cost with no"
        f" flood; without them: {1e6 * net_s / result['events']:.1f} us per event"
    )
    per_core = result["events"] / net_s
    print(f"  whole call path, per service CPU second:  {per_core:>10,.0f} events/s per core")
    print(f"  core alone (CallState.feed_raw, same frames): {core:>10,.0f} events/s")
    print(f"  whole path / core alone:                  {per_core / core:>10.2f}")
    print(f"  flooded call: {result['flooded_state']}, caps reached {result['limits_reached']}")
    print("  GET /v1/calls/{other call}      requests   p50 ms   p99 ms")
    for name, values in (("no flood", base), ("during the flood", during)):
        print(
            f"    {name:<28} {len(values):>8} {percentile(values, 50):>8.1f}"
            f" {percentile(values, 99):>8.1f}"
        )


if __name__ == "__main__":
    main()
