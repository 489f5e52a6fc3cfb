"""Capacity: N concurrent calls held against ONE orchestrator, beside a direct-to-provider baseline.

For each N, on fresh processes:

- **via callbridge** — a `callbridge provider` in no-media mode (`CALLBRIDGE_LOCAL_MEDIA=false`:
  fake SDP answers, no WebRTC peer, but a real sideband WebSocket and conversation) and one
  `callbridge serve` pointed at it. N calls are started with `POST /v1/calls` (application/sdp,
  at most `--concurrency` in flight). Setup time is the time to the 201; "active" is the time
  until the call has a provider session id (`session.ready` on `GET /v1/calls/{id}/events`,
  watched for a sample of calls); "joined" is the record's `sideband_joined_at` minus the
  moment the offer was sent (all calls). The calls are then held for `--hold` seconds, during
  which every call gets one `POST /v1/calls/{id}/messages {"text": "hello"}` (the provider
  answers with an assistant transcript streamed over the sideband). The orchestrator's CPU and
  RSS are read from /proc over the hold; RSS per call is (RSS at the end of the hold - RSS idle
  after a warm-up) / N. Then every call is DELETEd and both processes are stopped, so every N
  starts from fresh processes.
- **direct** — the same N call creations sent straight to the provider's
  `POST /v1/realtime/calls` (multipart sdp + session, as callbridge sends them), each then
  joining `ws://.../v1/realtime?call_id=...` with a `session.update`, receiving every event and
  sending the same "hello" message: what callbridge does, minus callbridge.

Everything runs on this machine (bench client, provider and orchestrator share its cores), so
the figures are a floor for one orchestrator, not a ceiling. Child logs are kept in a temp
directory and scanned for tracebacks and errors at the end.

Run: `.venv/bin/python bench/capacity.py [--n 100,500,1000,2000] [--hold 10]`; up to
`--n 10000` (the orchestrator's `CALLBRIDGE_MAX_CALLS` is raised to fit N).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import certifi
import httpx
from offers import make_offer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from signaling.realtime.client_events import (
    SessionConfig,
    response_create,
    session_payload,
    session_update,
    user_message,
)

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-bench"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
DEFAULT_NS = "100,500,1000,2000"
MESSAGE = "hello"
# The service's default instructions, so the baseline's session payload matches what it sends.
INSTRUCTIONS = "You are a helpful voice assistant. Delegate real work to the background agent."
ACTIVE_SAMPLE = 100
WARMUP_CALLS = 3
HTTP_TIMEOUT_S = 30.0
PHASE_TIMEOUT_S = 120.0
# A phase may take longer for large N: at least this many operations per second are expected.
PHASE_MIN_RATE = 10.0
SETTLE_TIMEOUT_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes --------------------------------------------------------------------------------


def _die_with_parent() -> None:
    # Linux: the child gets SIGKILL if this benchmark dies without running its finally blocks.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    """One `python -m service.cli ...` process (or another `program`) with its output in a log
    file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    program: tuple[str, ...] = ("-m", "service.cli")

    def start(self) -> Child:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *self.program, *self.args],
                env={**os.environ, **self.env},
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_http(self, url: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited early (see {self.log_path})")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code < 500:
                        return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} did not answer {url} in {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL; the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class Children:
    """Every child started, so that all of them are stopped whatever happens."""

    def __init__(self, log_dir: Path, *, tls: bool = False) -> None:
        """With `tls`, providers serve https and wss with a self-signed certificate, which
        this process and every child trust through `SSL_CERT_FILE`: a bundle of certifi's CAs
        and that certificate, so that loading it costs what loading a real trust store does."""
        self.log_dir = log_dir
        self.all: list[Child] = []
        self.tls: tuple[Path, Path] | None = None
        if tls:
            from media.local_provider import self_signed

            self.tls = self_signed(log_dir)
            bundle = log_dir / "trusted.pem"
            bundle.write_bytes(Path(certifi.where()).read_bytes() + self.tls[0].read_bytes())
            os.environ["SSL_CERT_FILE"] = str(bundle)

    def provider(self, tag: str) -> tuple[Child, str]:
        port = free_port()
        env = {
            "CALLBRIDGE_API_KEY": API_KEY,
            "CALLBRIDGE_LOCAL_MEDIA": "false",
            "CALLBRIDGE_LOG_LEVEL": "WARNING",
        }
        args = ["provider", "--port", str(port)]
        if self.tls is not None:
            args += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        child = Child(f"provider[{tag}]", args, env, self.log_dir / f"provider-{tag}.log")
        self.all.append(child.start())
        scheme = "https" if self.tls is not None else "http"
        return child, f"{scheme}://127.0.0.1:{port}"

    def orchestrator(
        self, tag: str, provider_url: str, extra: dict[str, str] | None = None
    ) -> tuple[Child, str]:
        port = free_port()
        env = {
            "CALLBRIDGE_PROVIDER": "openai",
            "CALLBRIDGE_PROVIDER_URL": provider_url,
            "CALLBRIDGE_API_KEY": API_KEY,
            "CALLBRIDGE_MAX_CALLS": "5000",
            "CALLBRIDGE_RATE_LIMIT_PER_MINUTE": "1000000",
            "CALLBRIDGE_RATE_LIMIT_BURST": "1000000",
            "CALLBRIDGE_LOG_LEVEL": "WARNING",
            "CALLBRIDGE_LOG_FORMAT": "json",
            "CALLBRIDGE_DRAIN_TIMEOUT_S": "2",
            **(extra or {}),
        }
        child = Child(
            f"serve[{tag}]",
            ["serve", "--port", str(port)],
            env,
            self.log_dir / f"serve-{tag}.log",
        )
        self.all.append(child.start())
        return child, f"http://127.0.0.1:{port}"

    def bare_relay(self, tag: str, provider_url: str) -> tuple[Child, str]:
        """`bare_relay.py` in front of the provider: callbridge's call start with nothing of
        callbridge's own."""
        port = free_port()
        args = ["--port", str(port), "--provider", provider_url, "--api-key", API_KEY]
        args += ["--instructions", INSTRUCTIONS]
        relay = str(Path(__file__).with_name("bare_relay.py"))
        # Run as a script, it would import this tree's packages from wherever they are installed.
        env = {"PYTHONPATH": str(ROOT)}
        child = Child(f"relay[{tag}]", args, env, self.log_dir / f"relay-{tag}.log", None, (relay,))
        self.all.append(child.start())
        return child, f"http://127.0.0.1:{port}"

    def stop_all(self) -> None:
        for child in reversed(self.all):
            child.stop()


# --- /proc ------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident set size of `pid` in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds `pid` has used (0 once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --- figures ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (`q` in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def num(value: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def parse_iso(stamp: str | None) -> float | None:
    """Seconds since the epoch of the API's `YYYY-mm-ddTHH:MM:SS.mmmZ` timestamps."""
    if not stamp:
        return None
    return datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


@dataclass
class Outcomes:
    """Latencies of what succeeded and a count of everything that did not."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)

    def status(self, response: httpx.Response) -> None:
        self.statuses[str(response.status_code)] += 1
        if len(self.details) < 3:
            self.details.append(f"{response.status_code}: {response.text[:200].strip()}")

    def error(self, exc: BaseException, context: str = "") -> None:
        self.errors[type(exc).__name__] += 1
        if len(self.details) < 3:
            cause = exc.__cause__ or exc.__context__
            because = f" (from {type(cause).__name__}: {cause})" if cause is not None else ""
            self.details.append(f"{type(exc).__name__}: {exc!s:.200}{because}{context}")

    @property
    def failed(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    def summary(self) -> str:
        parts = [f"HTTP {code} x{count}" for code, count in sorted(self.statuses.items())]
        parts += [f"{name} x{count}" for name, count in sorted(self.errors.items())]
        return ", ".join(parts) if parts else "none"


@dataclass
class Run:
    """What one side (via callbridge or direct) measured at one N."""

    n: int
    started: int = 0
    start_wall_s: float = 0.0
    starts: Outcomes = field(default_factory=Outcomes)
    active: list[float] = field(default_factory=list)
    active_sampled: int = 0
    joined: list[float] = field(default_factory=list)
    live_after_start: int = 0
    live_after_hold: int | None = None
    messages: Outcomes = field(default_factory=Outcomes)
    replies: int = 0
    transcript_deltas: int = 0
    hangups: Outcomes = field(default_factory=Outcomes)
    hangup_wall_s: float = 0.0
    rss_idle_kib: int = 0
    rss_held_kib: int = 0
    rss_peak_kib: int = 0
    hold_cpu_pct: float | None = None
    start_cpu_s: float = 0.0
    provider_start_cpu_s: float = 0.0
    bench_start_cpu_s: float = 0.0
    quiet_cpu_pct: float | None = None
    reconnects: int = 0
    provider_cpu_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    fatal: str | None = None

    @property
    def starts_per_s(self) -> float | None:
        return self.started / self.start_wall_s if self.start_wall_s > 0 and self.started else None

    @property
    def rss_per_call_kib(self) -> float | None:
        if not self.started or not self.rss_held_kib or not self.rss_idle_kib:
            return None
        return (self.rss_held_kib - self.rss_idle_kib) / self.started


def say(text: str) -> None:
    print(text, flush=True)


# --- shared helpers ---------------------------------------------------------------------------


async def bounded(
    count: int,
    concurrency: int,
    work: Callable[[int, asyncio.Semaphore], Coroutine[Any, Any, None]],
) -> float:
    """Run `work(i, sem)` for every i; the wall time in seconds. `work` holds `sem` while busy."""
    sem = asyncio.Semaphore(concurrency)
    began = time.monotonic()
    tasks = [asyncio.create_task(work(i, sem)) for i in range(count)]
    done, pending = await asyncio.wait(tasks, timeout=max(PHASE_TIMEOUT_S, count / PHASE_MIN_RATE))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    for task in done:
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            raise failure
    return time.monotonic() - began


def sampled(n: int) -> set[int]:
    """Evenly spread indices of the calls whose activation is watched."""
    if n <= ACTIVE_SAMPLE:
        return set(range(n))
    step = n / ACTIVE_SAMPLE
    return {int(k * step) for k in range(ACTIVE_SAMPLE)}


class RssSampler:
    """Peak RSS of a process, sampled in the background."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        self.pid = pid
        self.peak = 0
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.peak = max(self.peak, rss_kib(self.pid))

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_kib(self.pid))
            await asyncio.sleep(self._interval_s)


# --- via callbridge ---------------------------------------------------------------------------


async def _start_calls(
    client: httpx.AsyncClient,
    watcher: httpx.AsyncClient,
    offer: str,
    n: int,
    concurrency: int,
    run: Run | None,
) -> tuple[list[str], dict[str, float], list[asyncio.Task[float | None]]]:
    """POST n offers; the call ids, when each offer was sent (wall clock) and the watchers."""
    ids: list[str] = []
    sent_at: dict[str, float] = {}
    watchers: list[asyncio.Task[float | None]] = []
    sample = sampled(n) if run is not None else set()
    outcomes = run.starts if run is not None else Outcomes()

    async def one(i: int, sem: asyncio.Semaphore) -> None:
        async with sem:
            began, wall = time.monotonic(), time.time()
            try:
                response = await client.post(
                    "/v1/calls", content=offer, headers={"content-type": "application/sdp"}
                )
            except httpx.HTTPError as exc:
                outcomes.error(exc, f" after {time.monotonic() - began:.3f} s, request #{i}")
                return
            took = time.monotonic() - began
        if response.status_code != 201:
            outcomes.status(response)
            return
        call_id = response.headers.get("location", "").rsplit("/", 1)[-1]
        outcomes.latencies.append(took)
        ids.append(call_id)
        sent_at[call_id] = wall
        if i in sample:
            watchers.append(asyncio.create_task(_await_active(watcher, call_id, began)))

    wall_s = await bounded(n, concurrency, one)
    if run is not None:
        run.started = len(ids)
        run.start_wall_s = wall_s
        run.active_sampled = len(watchers)
    return ids, sent_at, watchers


async def _await_active(client: httpx.AsyncClient, call_id: str, began: float) -> float | None:
    """Seconds from the offer until the call's event stream says `session.ready` (the provider
    session id is known); None if it never does. The stream replays history, so opening it
    late loses nothing, and one streaming request per call loads the service far less than
    polling `GET /v1/calls/{id}` would."""
    try:
        async with asyncio.timeout(SETTLE_TIMEOUT_S):
            url = f"/v1/calls/{call_id}/events"
            async with client.stream("GET", url, timeout=SETTLE_TIMEOUT_S) as response:
                if response.status_code != 200:
                    return None
                async for line in response.aiter_lines():
                    if line.strip() == "event: session.ready":
                        return time.monotonic() - began
    except (httpx.HTTPError, TimeoutError):
        pass
    return None


async def _live_calls(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/v1/calls")
    response.raise_for_status()
    calls: list[dict[str, Any]] = response.json()["calls"]
    return calls


async def _wait_all_active(
    client: httpx.AsyncClient, ids: list[str], timeout_s: float
) -> list[dict[str, Any]]:
    """The live call records once every call in `ids` has a session id (or at the timeout)."""
    wanted = set(ids)
    deadline = time.monotonic() + timeout_s
    calls: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            calls = await _live_calls(client)
            ready = {c["id"] for c in calls if c.get("provider_session_id")}
            if wanted <= ready:
                break
        await asyncio.sleep(0.25)
    return calls


async def _delete_calls(
    client: httpx.AsyncClient, ids: list[str], concurrency: int, outcomes: Outcomes
) -> float:
    async def one(i: int, sem: asyncio.Semaphore) -> None:
        async with sem:
            try:
                response = await client.delete(f"/v1/calls/{ids[i]}")
            except httpx.HTTPError as exc:
                outcomes.error(exc)
                return
        if response.status_code != 200:
            outcomes.status(response)

    return await bounded(len(ids), concurrency, one)


def _metric_total(text: str, name: str, label: str) -> int:
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}\{{[^}}]*{re.escape(label)}[^}}]*\}} (\S+)$", re.M)
    for match in pattern.finditer(text):
        total += float(match[1])
    return int(total)


async def run_via(children: Children, n: int, hold_s: float, concurrency: int, offer: str) -> Run:
    run = Run(n)
    provider, provider_url = children.provider(f"via-{n}")
    orchestrator, url = children.orchestrator(
        f"{n}", provider_url, {"CALLBRIDGE_MAX_CALLS": str(max(5000, n + 100))}
    )
    try:
        await provider.wait_http(f"{provider_url}/healthz")
        await orchestrator.wait_http(f"{url}/healthz")
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        watch_limits = httpx.Limits(max_connections=ACTIVE_SAMPLE, max_keepalive_connections=0)
        async with (
            httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT_S, limits=limits) as client,
            httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT_S, limits=watch_limits) as watcher,
        ):
            # Warm-up: first requests import and build things lazily; not counted.
            warm, _, _ = await _start_calls(client, watcher, offer, WARMUP_CALLS, 4, None)
            await _wait_all_active(client, warm, 20)
            await _delete_calls(client, warm, 4, Outcomes())
            await asyncio.sleep(1.0)
            run.rss_idle_kib = rss_kib(orchestrator.pid)
            pid, provider_pid = orchestrator.pid, provider.pid
            provider_cpu0 = cpu_s(provider_pid)

            cpu0, bench0 = cpu_s(pid), time.process_time()
            ids, sent_at, watchers = await _start_calls(client, watcher, offer, n, concurrency, run)
            run.start_cpu_s = cpu_s(pid) - cpu0
            run.bench_start_cpu_s = time.process_time() - bench0
            run.provider_start_cpu_s = cpu_s(provider_pid) - provider_cpu0
            say(
                f"  via callbridge N={n}: {run.started} started in {run.start_wall_s:.1f} s "
                f"({run.starts.failed} failed)"
            )
            if watchers:
                done, pending = await asyncio.wait(watchers, timeout=SETTLE_TIMEOUT_S)
                for task in pending:
                    task.cancel()
                for task in done:
                    seconds = task.result()
                    if seconds is not None:
                        run.active.append(seconds)
            calls = await _wait_all_active(client, ids, SETTLE_TIMEOUT_S)
            mine = [c for c in calls if c["id"] in sent_at]
            run.live_after_start = sum(1 for c in mine if c.get("provider_session_id"))
            run.reconnects = sum(int(c.get("sideband_reconnects") or 0) for c in mine)
            for record in mine:
                joined = parse_iso(record.get("sideband_joined_at"))
                if joined is not None:
                    # Record timestamps have millisecond resolution.
                    run.joined.append(max(0.0, joined - sent_at[record["id"]]))

            # Hold: one message per call, CPU and RSS from /proc.
            hold_began = time.monotonic()
            cpu_hold0 = cpu_s(pid)
            with RssSampler(pid) as sampler:

                async def message(i: int, sem: asyncio.Semaphore) -> None:
                    async with sem:
                        began = time.monotonic()
                        try:
                            response = await client.post(
                                f"/v1/calls/{ids[i]}/messages", json={"text": MESSAGE}
                            )
                        except httpx.HTTPError as exc:
                            run.messages.error(exc)
                            return
                        took = time.monotonic() - began
                    if response.status_code == 202:
                        run.messages.latencies.append(took)
                    else:
                        run.messages.status(response)

                messages_s = await bounded(len(ids), concurrency, message)
                if messages_s > hold_s:
                    run.notes.append(f"messages took {messages_s:.1f} s, longer than the hold")
                # Let the replies land, then see what holding quiet calls costs.
                await asyncio.sleep(min(1.0, max(0.0, hold_began + hold_s - time.monotonic())))
                quiet_began, quiet_cpu0 = time.monotonic(), cpu_s(pid)
                await asyncio.sleep(max(0.0, hold_began + hold_s - time.monotonic()))
                quiet_wall = time.monotonic() - quiet_began
                if quiet_wall >= 1.0:
                    run.quiet_cpu_pct = (cpu_s(pid) - quiet_cpu0) / quiet_wall * 100
                hold_wall = time.monotonic() - hold_began
                run.hold_cpu_pct = (cpu_s(pid) - cpu_hold0) / hold_wall * 100
                run.rss_held_kib = rss_kib(pid)
            run.rss_peak_kib = sampler.peak
            if not orchestrator.alive():
                run.fatal = "the orchestrator died during the hold"
                return run
            metrics = (await client.get("/metrics")).text
            run.replies = _metric_total(
                metrics, "callbridge_provider_events_total", 'type="response.done"'
            )
            run.transcript_deltas = _metric_total(
                metrics,
                "callbridge_provider_events_total",
                'type="response.output_audio_transcript.delta"',
            )
            live = {c["id"] for c in await _live_calls(client)}
            run.live_after_hold = len(live & set(ids))

            run.hangup_wall_s = await _delete_calls(client, ids, concurrency, run.hangups)
            run.provider_cpu_s = cpu_s(provider_pid) - provider_cpu0
            left = await _live_calls(client)
            if left:
                run.notes.append(f"{len(left)} calls still live after DELETE")
    except Exception as exc:
        run.fatal = f"{type(exc).__name__}: {exc}"
    finally:
        code = orchestrator.stop()
        provider.stop()
        if code != 0:
            run.notes.append(f"orchestrator exit code after SIGTERM: {code}")
    return run


# --- direct to the provider -------------------------------------------------------------------


class DirectCall:
    """One call made straight at the provider: its sideband and what came over it."""

    def __init__(self, call_id: str, began: float) -> None:
        self.call_id = call_id
        self.began = began
        self.active_after: float | None = None
        self.active = asyncio.Event()
        self.replied = asyncio.Event()
        self.deltas = 0
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.error: str | None = None

    async def join(self, ws_url: str, update: dict[str, Any]) -> None:
        try:
            self.ws = await connect(
                f"{ws_url}?call_id={self.call_id}",
                additional_headers=AUTH,
                open_timeout=10,
                ping_interval=20,
                ping_timeout=20,
                max_size=16 * 1024 * 1024,
            )
            await self.ws.send(json.dumps(update, separators=(",", ":")))
        except (OSError, TimeoutError, WebSocketException) as exc:
            self.error = type(exc).__name__
            return
        self.reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                kind = json.loads(raw).get("type")
                if kind == "session.updated" and self.active_after is None:
                    self.active_after = time.monotonic() - self.began
                    self.active.set()
                elif kind == "response.output_audio_transcript.delta":
                    self.deltas += 1
                elif kind == "response.done":
                    self.replied.set()

    async def say(self, text: str) -> bool:
        if self.ws is None:
            return False
        try:
            async with asyncio.timeout(HTTP_TIMEOUT_S):
                await self.ws.send(json.dumps(user_message(text), separators=(",", ":")))
                await self.ws.send(json.dumps(response_create(), separators=(",", ":")))
        except (ConnectionClosed, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self.reader is not None:
            self.reader.cancel()


async def run_direct(
    children: Children, n: int, hold_s: float, concurrency: int, offer: str
) -> Run:
    run = Run(n)
    provider, provider_url = children.provider(f"direct-{n}")
    ws_url = provider_url.replace("http://", "ws://") + "/v1/realtime"
    config = SessionConfig(instructions=INSTRUCTIONS)
    session = json.dumps(session_payload(config, include_model=True)).encode()
    update = session_update(config)
    calls: list[DirectCall] = []
    joins: list[asyncio.Task[None]] = []
    try:
        await provider.wait_http(f"{provider_url}/healthz")
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=provider_url, headers=AUTH, timeout=HTTP_TIMEOUT_S, limits=limits
        ) as client:

            async def create(i: int, sem: asyncio.Semaphore, record: Outcomes) -> None:
                async with sem:
                    began = time.monotonic()
                    files = {
                        "sdp": (None, offer.encode(), "application/sdp"),
                        "session": (None, session, "application/json"),
                    }
                    try:
                        response = await client.post("/v1/realtime/calls", files=files)
                    except httpx.HTTPError as exc:
                        record.error(exc, f" after {time.monotonic() - began:.3f} s, request #{i}")
                        return
                    took = time.monotonic() - began
                if response.status_code != 201:
                    record.status(response)
                    return
                record.latencies.append(took)
                call = DirectCall(response.headers.get("location", "").rsplit("/", 1)[-1], began)
                calls.append(call)
                # Like callbridge, the sideband is joined after the answer, in the background.
                joins.append(asyncio.create_task(call.join(ws_url, update)))

            # Warm-up, as for the orchestrator.
            warm = Outcomes()
            await bounded(WARMUP_CALLS, 4, lambda i, sem: create(i, sem, warm))
            if joins:
                await asyncio.wait(joins, timeout=20)
            for call in calls:
                await asyncio.wait_for(call.active.wait(), 10)
                await client.post(f"/v1/realtime/calls/{call.call_id}/hangup")
                await call.close()
            calls.clear()
            joins.clear()
            provider_cpu0, bench0 = cpu_s(provider.pid), time.process_time()
            run.start_wall_s = await bounded(
                n, concurrency, lambda i, sem: create(i, sem, run.starts)
            )
            run.bench_start_cpu_s = time.process_time() - bench0
            run.provider_start_cpu_s = cpu_s(provider.pid) - provider_cpu0
            run.started = len(calls)
            say(
                f"  direct         N={n}: {run.started} started in {run.start_wall_s:.1f} s "
                f"({run.starts.failed} failed)"
            )
            if joins:
                await asyncio.wait(joins, timeout=SETTLE_TIMEOUT_S)
            waits = [asyncio.create_task(c.active.wait()) for c in calls if c.ws is not None]
            if waits:
                _, still = await asyncio.wait(waits, timeout=SETTLE_TIMEOUT_S)
                for waiting in still:
                    waiting.cancel()
            run.active = [c.active_after for c in calls if c.active_after is not None]
            run.active_sampled = len(calls)
            run.live_after_start = len(run.active)
            join_errors = Counter(c.error for c in calls if c.error)
            if join_errors:
                run.notes.append(f"sideband joins failed: {dict(join_errors)}")

            # The same message per call; wait for the replies, at most for the hold.
            sent = await asyncio.gather(*(c.say(MESSAGE) for c in calls))
            run.messages.latencies = [0.0] * sum(sent)
            if not all(sent):
                run.messages.errors["ConnectionClosed"] += len(sent) - sum(sent)
            replies = [asyncio.create_task(c.replied.wait()) for c in calls]
            if replies:
                _, pending = await asyncio.wait(replies, timeout=hold_s)
                for waiting_reply in pending:
                    waiting_reply.cancel()
                if pending:
                    run.notes.append(f"{len(pending)} replies did not arrive within the hold")
            run.replies = sum(1 for c in calls if c.replied.is_set())
            run.transcript_deltas = sum(c.deltas for c in calls)
            run.live_after_hold = sum(
                1 for c in calls if c.reader is not None and not c.reader.done()
            )

            async def hangup(i: int, sem: asyncio.Semaphore) -> None:
                async with sem:
                    try:
                        response = await client.post(
                            f"/v1/realtime/calls/{calls[i].call_id}/hangup"
                        )
                    except httpx.HTTPError as exc:
                        run.hangups.error(exc)
                        return
                if response.status_code != 200:
                    run.hangups.status(response)

            run.hangup_wall_s = await bounded(len(calls), concurrency, hangup)
            run.provider_cpu_s = cpu_s(provider.pid) - provider_cpu0
    except Exception as exc:
        run.fatal = f"{type(exc).__name__}: {exc}"
    finally:
        for task in joins:
            task.cancel()
        await asyncio.gather(*(c.close() for c in calls), return_exceptions=True)
        provider.stop()
    return run


# --- the offer, limits, logs, report ----------------------------------------------------------


def raise_nofile() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


_NOISE = re.compile(r"rtc_[A-Za-z0-9]+|cb_[0-9a-f]+|\d+(\.\d+)?")


_ACCESS_STATUS = re.compile(r'HTTP/[\d.]+" (\d{3})')


def scan_log(path: Path) -> tuple[int, int, Counter[str], Counter[str]]:
    """Lines, tracebacks, the distinct error/warning messages (ids and numbers masked) and the
    HTTP statuses >= 400 of uvicorn access-log lines."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    tracebacks = 0
    found: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for line in lines:
        access = _ACCESS_STATUS.search(line)
        if access is not None:
            if int(access[1]) >= 400:
                statuses[access[1]] += 1
            continue
        text = line
        exc = ""
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                text = f"{record.get('level', '?')} {record.get('logger', '')}: {record.get('msg')}"
                exc = str(record.get("exc") or "")
        tracebacks += line.count("Traceback") + exc.count("Traceback")
        if exc:
            text += " | " + exc.strip().splitlines()[-1]
        if re.search(r"error|traceback|warning|exception|critical", text, re.IGNORECASE):
            found[_NOISE.sub("#", text)[:240]] += 1
    return len(lines), tracebacks, found, statuses


VIA_COLUMNS = (
    (" via callbridge: starts/s", "{:.0f}"),
    ("  p50 ms", ""),
    ("  p99 ms", ""),
    ("  active p50 ms", ""),
    ("  RSS/call KiB", "{:.1f}"),
    ("  idle RSS MiB", "{:.1f}"),
    ("  CPU %", "{:.0f}"),
)
DIRECT_COLUMNS = (
    (" direct: starts/s", ""),
    ("  p50 ms", ""),
    ("  p99 ms", ""),
    ("  active p50 ms", ""),
)


def _cells(columns: tuple[tuple[str, str], ...], values: list[str]) -> str:
    return "".join(
        value.rjust(len(title)) for (title, _), value in zip(columns, values, strict=True)
    )


def report(ns: list[int], via: dict[int, Run], direct: dict[int, Run], log_dir: Path) -> None:
    say("")
    say(
        "N     |"
        + "".join(title for title, _ in VIA_COLUMNS)
        + "  |"
        + "".join(title for title, _ in DIRECT_COLUMNS)
    )
    for n in ns:
        v, d = via.get(n), direct.get(n)
        left = _cells(VIA_COLUMNS, ["-"] * len(VIA_COLUMNS))
        right = _cells(DIRECT_COLUMNS, ["-"] * len(DIRECT_COLUMNS))
        if v is not None:
            left = _cells(
                VIA_COLUMNS,
                [
                    num(v.starts_per_s),
                    ms(percentile(v.starts.latencies, 50)),
                    ms(percentile(v.starts.latencies, 99)),
                    ms(percentile(v.active, 50)),
                    num(v.rss_per_call_kib, "{:.1f}"),
                    num(v.rss_idle_kib / 1024 if v.rss_idle_kib else None, "{:.1f}"),
                    num(v.hold_cpu_pct),
                ],
            )
        if d is not None:
            right = _cells(
                DIRECT_COLUMNS,
                [
                    num(d.starts_per_s),
                    ms(percentile(d.starts.latencies, 50)),
                    ms(percentile(d.starts.latencies, 99)),
                    ms(percentile(d.active, 50)),
                ],
            )
        say(f"{n:<5} |{left}  |{right}")
    say("")
    say("Details")
    for n in ns:
        for side, run in (("via callbridge", via.get(n)), ("direct", direct.get(n))):
            if run is None:
                continue
            say(f"  N={n} {side}:")
            if run.fatal:
                say(f"    FAILED: {run.fatal}")
            say(
                f"    started {run.started}/{n} in {run.start_wall_s:.2f} s; start failures: "
                f"{run.starts.summary()}"
            )
            for detail in run.starts.details:
                say(f"      e.g. {detail}")
            say(
                f"    active (session id seen) {run.live_after_start}/{run.started}; "
                f"active p50/p99 "
                f"{ms(percentile(run.active, 50))}/{ms(percentile(run.active, 99))} ms over "
                f"{len(run.active)}/{run.active_sampled} "
                + ("sampled calls" if side != "direct" else "calls")
            )
            if run.joined:
                say(
                    f"    sideband joined p50/p99 {ms(percentile(run.joined, 50))}/"
                    f"{ms(percentile(run.joined, 99))} ms (all {len(run.joined)} calls, from "
                    f"the records)"
                )
            if side != "direct":
                say(
                    f"    messages: {len(run.messages.latencies)} accepted, p50/p99 "
                    f"{ms(percentile(run.messages.latencies, 50))}/"
                    f"{ms(percentile(run.messages.latencies, 99))} ms; failures: "
                    f"{run.messages.summary()}"
                )
            else:
                say(f"    messages: {len(run.messages.latencies)} sent; {run.messages.summary()}")
            say(
                f"    replies (response.done) {run.replies}, transcript deltas "
                f"{run.transcript_deltas}; live at end of hold: {run.live_after_hold}"
            )
            say(f"    hang-up of all: {run.hangup_wall_s:.2f} s; failures: {run.hangups.summary()}")
            if side != "direct":
                per_call = run.start_cpu_s / run.started * 1000 if run.started else None
                say(
                    f"    orchestrator RSS idle {run.rss_idle_kib / 1024:.1f} MiB, held "
                    f"{run.rss_held_kib / 1024:.1f} MiB (peak {run.rss_peak_kib / 1024:.1f}); "
                    f"CPU during starts {run.start_cpu_s:.2f} s "
                    f"({num(per_call, '{:.2f}')} ms/call), during hold {num(run.hold_cpu_pct)} % "
                    f"(quiet part, after the replies: {num(run.quiet_cpu_pct, '{:.1f}')} %); "
                    f"sideband reconnects {run.reconnects}"
                )
            say(
                f"    CPU during the start phase: provider {run.provider_start_cpu_s:.2f} s, "
                f"bench client {run.bench_start_cpu_s:.2f} s (wall {run.start_wall_s:.2f} s); "
                f"provider CPU over the whole run {run.provider_cpu_s:.2f} s"
            )
            for note in run.notes:
                say(f"    note: {note}")
    say("")
    say(f"Child logs in {log_dir}:")
    for path in sorted(log_dir.glob("*.log")):
        lines, tracebacks, found, statuses = scan_log(path)
        refused = ", ".join(f"{code} x{count}" for code, count in sorted(statuses.items()))
        say(
            f"  {path.name}: {lines} lines, {tracebacks} tracebacks, "
            f"{sum(found.values())} error/warning lines"
            + (f", HTTP answers >= 400 in its access log: {refused}" if refused else "")
        )
        for text, count in found.most_common(5):
            say(f"    x{count}: {text}")


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default=DEFAULT_NS, help=f"comma-separated N (default {DEFAULT_NS})")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the calls are held")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    return parser.parse_args(argv)


@contextlib.contextmanager
def children_stopped(children: Children) -> Iterator[Children]:
    try:
        yield children
    finally:
        children.stop_all()


async def main_async(args: argparse.Namespace) -> int:
    ns = [int(part) for part in args.n.split(",") if part.strip()]
    nofile = raise_nofile()
    offer = await make_offer()
    log_dir = Path(tempfile.mkdtemp(prefix="callbridge-capacity-"))
    say("callbridge capacity benchmark")
    say(
        f"  os.cpu_count()={os.cpu_count()}  python {platform.python_version()}  "
        f"RLIMIT_NOFILE={nofile[0]}/{nofile[1]}"
    )
    say(
        f"  N={ns}  hold={args.hold:g} s  concurrency={args.concurrency}  offer={len(offer)} B "
        f"(aiortc)  provider: local, no media"
    )
    say("  bench client, provider and orchestrator all run on this machine")
    via: dict[int, Run] = {}
    direct: dict[int, Run] = {}
    with children_stopped(Children(log_dir)) as children:
        for n in ns:
            needed = 2 * n + 200
            if needed > nofile[0]:
                say(f"  N={n}: warning: needs ~{needed} file descriptors, limit {nofile[0]}")
            direct[n] = await run_direct(children, n, args.hold, args.concurrency, offer)
            if direct[n].fatal:
                say(f"  direct N={n} failed: {direct[n].fatal}")
            via[n] = await run_via(children, n, args.hold, args.concurrency, offer)
            if via[n].fatal:
                say(f"  via callbridge N={n} failed: {via[n].fatal}")
    report(ns, via, direct, log_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
