"""Hostile inputs: what they cost now, beside what the replaced code (or no cap) cost.

1. Multipart parse time against body size, for the streaming parser the API uses
   (`service.api.bodies.MultipartForm`, python-multipart) and, as the same-run baseline, the
   standard library's email parser it replaced. Three shapes: one large part, many small parts,
   and one header line with many parameters (the shape that froze the service). Per-KiB cost
   that stays flat means linear growth.
2. `/metrics` size and scrape time after N unknown provider event types pushed through a real
   sideband (a stand-in provider on loopback).
3. RSS of a call fed a large transcript through the sideband, under the per-call transcript cap
   when this build has one (`CALLBRIDGE_MAX_TRANSCRIPT_BYTES`), and without it as the baseline.

Run: `.venv/bin/python bench/hostile_inputs.py [--event-types N] [--transcript-mb M]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import httpx

from service.api.bodies import FormLimits, MultipartForm
from service.app import create_app
from service.settings import Settings

# The stand-in provider and the sample offer live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.servers import running_server
from tests.unit.sdp_samples import AIORTC_OFFER

BOUNDARY = "benchboundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
CHUNK = 64 * 1024
# Generous limits so that only parsing is timed, never a refusal.
OPEN_LIMITS = FormLimits(
    max_bytes=1 << 30,
    max_parts=1 << 20,
    max_part_headers=8,
    max_header_bytes=1 << 30,
    max_header_params=1 << 30,
)
# The limits the service runs with (the defaults).
SERVICE_LIMITS = FormLimits(
    max_bytes=1 << 30,
    max_parts=Settings().max_form_parts,
    max_part_headers=Settings().max_form_part_headers,
    max_header_bytes=Settings().max_form_header_bytes,
    max_header_params=Settings().max_form_header_params,
)


def _one_part(size: int) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=sdp\r\n\r\n".encode()
    return head + b"x" * size + f"\r\n--{BOUNDARY}--\r\n".encode()


def _many_parts(size: int) -> bytes:
    part = f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=p{{}}\r\n\r\nxxxxxxxx\r\n"
    count = max(1, size // len(part.format(0)))
    return ("".join(part.format(i) for i in range(count)) + f"--{BOUNDARY}--\r\n").encode()


def _many_params(size: int) -> bytes:
    count = max(1, size // 4)
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=sdp{';a=b' * count}\r\n\r\n"
        f"v=0\r\n--{BOUNDARY}--\r\n"
    ).encode()


def _streaming(body: bytes, limits: FormLimits) -> None:
    form = MultipartForm(CONTENT_TYPE, limits)
    try:
        for start in range(0, len(body), CHUNK):
            form.feed(body[start : start + CHUNK])
        form.finish()
    except Exception as exc:  # a refusal is the outcome being timed
        if type(exc).__name__ != "Problem":
            raise


def _email(body: bytes) -> None:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + CONTENT_TYPE.encode() + b"\r\n\r\n" + body
    )
    for part in message.iter_parts():
        part.get_param("name", header="content-disposition")
        part.get_payload(decode=True)


def _best_of(runs: int, work: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def multipart_table(runs: int) -> None:
    print(f"## 1. Multipart parse time against body size (best of {runs})")
    print(
        f"{'shape':<14}{'body KiB':>9}  {'streaming ms':>13}{'µs/KiB':>9}"
        f"  {'email ms':>10}{'µs/KiB':>10}"
    )
    shapes: list[tuple[str, Callable[[int], bytes], list[int]]] = [
        ("one part", _one_part, [64, 128, 256, 512, 1024]),
        ("many parts", _many_parts, [64, 128, 256, 512, 1024]),
        # The email baseline grows quadratically here; past 64 KiB it takes many seconds.
        ("many params", _many_params, [4, 8, 16, 32, 64]),
    ]
    for name, make, sizes in shapes:
        for kib in sizes:
            body = make(kib * 1024)
            real_kib = len(body) / 1024
            ours = _best_of(runs, lambda body=body: _streaming(body, OPEN_LIMITS))
            theirs = _best_of(1 if name == "many params" else runs, lambda body=body: _email(body))
            print(
                f"{name:<14}{real_kib:>9.0f}  {ours * 1e3:>13.2f}{ours * 1e6 / real_kib:>9.1f}"
                f"  {theirs * 1e3:>10.2f}{theirs * 1e6 / real_kib:>10.1f}"
            )
    body = _many_params(135 * 1024)
    refused = _best_of(runs, lambda: _streaming(body, SERVICE_LIMITS))
    print(
        f"The 135 KiB, ~{135 * 1024 // 4}-parameter body under the service's limits: refused "
        f"in {refused * 1e3:.3f} ms (header line over {SERVICE_LIMITS.max_header_bytes} bytes)."
    )


def _said(text: str, n: int) -> str:
    return json.dumps(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": f"item_{n}",
            "content_index": 0,
            "transcript": text,
        }
    )


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _call(settings: dict[str, Any]) -> tuple[Any, FaultyProvider, Any, str, Any]:
    provider = FaultyProvider()
    stack = []
    provider_cm = running_server(provider.app())
    provider_url = await provider_cm.__aenter__()
    stack.append(provider_cm)
    app = create_app(
        Settings(provider="openai", provider_url=provider_url, api_key="sk-bench", **settings)
    )
    service_cm = running_server(app)
    url = await service_cm.__aenter__()
    stack.append(service_cm)
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
        )
    response.raise_for_status()
    call_id = response.headers["location"].rsplit("/", 1)[1]
    await asyncio.wait_for(provider.connected.wait(), 10)
    return stack, provider, app, call_id, url


async def _close(stack: list[Any]) -> None:
    for cm in reversed(stack):
        await cm.__aexit__(None, None, None)


async def metrics_size(event_types: int) -> None:
    print(f"\n## 2. /metrics after {event_types:,} unknown provider event types")
    stack, provider, app, call_id, url = await _call({})
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            started = time.perf_counter()
            baseline = await client.get("/metrics")
            before_s = time.perf_counter() - started
            batch = 1000
            for first in range(0, event_types, batch):
                frames = [
                    json.dumps({"type": f"bench.unknown_{n}", "event_id": f"e{n}"})
                    for n in range(first, min(first + batch, event_types))
                ]
                await provider.push(call_id, *frames)
            session = app.state.manager.session(call_id)
            # The last frame is read once a known event sent after it has been applied.
            await provider.push(call_id, _said("done", 0))
            while session is not None and not session.call.transcript.snapshot():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            started = time.perf_counter()
            after = await client.get("/metrics")
            after_s = time.perf_counter() - started
    finally:
        await _close(stack)
    series = sum(1 for line in after.text.splitlines() if line and not line.startswith("#"))
    print(f"before: {len(baseline.content):>12,} bytes, scraped in {before_s * 1e3:8.1f} ms")
    print(
        f"after:  {len(after.content):>12,} bytes, scraped in {after_s * 1e3:8.1f} ms, "
        f"{series:,} samples"
    )


async def transcript_rss(megabytes: int) -> None:
    print(f"\n## 3. RSS of a call fed a {megabytes} MB transcript")
    knob = "max_transcript_bytes"
    # The baseline lifts the cap far above what is fed.
    runs: list[tuple[str, dict[str, Any]]] = [("no cap (baseline)", {knob: 1 << 40})]
    if knob in Settings.model_fields:
        runs.insert(0, (f"capped at {Settings().model_dump()[knob]:,} bytes", {}))
    else:
        print(f"under the caps: n/a (this build has no CALLBRIDGE_{knob.upper()} setting)")
    for label, settings in runs:
        gc.collect()
        before = _rss_kib()
        stack, provider, app, call_id, url = await _call(settings)
        try:
            piece = "x" * 100_000
            for n in range(megabytes * 10):
                await provider.push(call_id, _said(f"{n} {piece}", n))
            session = app.state.manager.session(call_id)
            # Fed once every item is in, or (capped) once the transcript stops changing.
            deadline, seen, still_since = time.monotonic() + 120, -1, time.monotonic()
            while session is not None and time.monotonic() < deadline:
                items = len(session.call.transcript.snapshot())
                if items >= megabytes * 10:
                    break
                if items != seen:
                    seen, still_since = items, time.monotonic()
                elif time.monotonic() - still_since > 2.0:
                    break
                await asyncio.sleep(0.05)
            during = _rss_kib()
            async with httpx.AsyncClient(base_url=url) as client:
                await client.delete(f"/v1/calls/{call_id}")
            gc.collect()
            ended = _rss_kib()
        finally:
            await _close(stack)
        print(
            f"{label:<28} RSS +{(during - before) / 1024:7.1f} MiB during the call, "
            f"+{(ended - before) / 1024:7.1f} MiB after it ended"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--event-types", type=int, default=200_000)
    parser.add_argument("--transcript-mb", type=int, default=50)
    args = parser.parse_args()
    multipart_table(args.runs)
    asyncio.run(metrics_size(args.event_types))
    asyncio.run(transcript_rss(args.transcript_mb))


if __name__ == "__main__":
    main()
