"""Handoff latency and throughput: the memory queue and Redis Streams, beside bare Redis.

What is measured:

- Latency, one handoff at a time, everything in this process on one event loop, no WebRTC.
  A call is simulated by wiring `CallState` to the stand-in provider's model (`Conversation`)
  back to back, as the sideband would (10 handoffs per call): typed user text makes the model
  call `background_agent`, and its server events reach `CallState.feed_raw` as JSON text, one
  message at a time.
  t0 = the message that completes the tool call is handed to `feed_raw` (the sideband has just
  delivered it). The `Delegation` goes on the queue; a `Worker` with a trivial handler takes
  it; t1 = the handler starts. The worker's result travels back on the owner's events stream
  to `CallState.submit_result`; t2 = the `function_call_output` event is handed to the
  sideband (here: to the model). Reported: t1 - t0 and t2 - t0.
  Then the same through Redis with the worker in its own `callbridge worker` process, as in a
  deployment: its handler answers with the moment it started (`time.monotonic()`, one clock
  for all processes on Linux), which is t1.
- Bare Redis in the same run: PING, and XADD by one client until another client, blocked in
  XREADGROUP on the stream, has the entry; the latter once right before each handoff of the
  Redis runs, so that the baseline sees the same machine load as the handoffs beside it.
- Throughput through Redis: handoffs put on the queue 32 at a time (as from many calls),
  answered by 1 and by 4 `callbridge worker` processes (default concurrency 4), with a handler
  that answers at once, with the built-in handler (one progress line, then the answer: three
  events per handoff) and with one that waits 50 ms; the rate is handoffs whose result is back
  at the one owner per second.

Redis is a private redis-server on a free port. Run: `.venv/bin/python bench/handoff_latency.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from media.local_provider import Conversation
from service.handoffs import (
    Answer,
    HandoffQueue,
    MemoryQueue,
    Worker,
)
from service.handoffs.handlers import HandlerStep
from service.handoffs.redis_streams import RedisStreamQueue
from signaling.realtime import (
    Action,
    CallState,
    Delegation,
    EnqueueHandoff,
    SendEvent,
    SessionConfig,
)

CALL_ID = "rtc_u0_BenchHandoffLatency0001"
_RUNS = itertools.count(1)
REQUEST = "please ask the background agent what is 2 plus 3"
REPLY_TO = "results:bench-owner"
WARMUP = 20
# Each simulated call makes this many handoffs; handling a tool call costs more the longer the
# call's transcript is, which is not what this benchmark is about.
HANDOFFS_PER_CALL = 10
PUTS_IN_FLIGHT = 32


# The simulated call


@dataclass
class Timings:
    """Per handoff id: t0 (tool call delivered), t1 (handler started), t2 (output sent)."""

    delivered: dict[str, float] = field(default_factory=dict)
    handler_started: dict[str, float] = field(default_factory=dict)
    output_sent: dict[str, float] = field(default_factory=dict)
    trigger_events: set[str] = field(default_factory=set)


class SimulatedCall:
    """`CallState` and the stand-in model, connected as the sideband connects them."""

    def __init__(self, call_id: str, queue: HandoffQueue, timings: Timings) -> None:
        self.queue = queue
        self.timings = timings
        self.state = CallState(call_id, SessionConfig())
        ids = itertools.count(1)
        self.model = Conversation(new_id=lambda prefix: f"{prefix}_{next(ids):08d}")

    async def join(self) -> None:
        """The sideband connects: the session is configured."""
        self.state.start(0.0)
        await self.apply(self.state.link_opened(0.0))

    async def deliver(self, events: Sequence[dict[str, Any]]) -> None:
        """Server events arriving on the sideband, each as the JSON text the socket carries."""
        for raw in [json.dumps(event) for event in events]:
            arrived = time.monotonic()
            actions = self.state.feed_raw(raw)
            if any(isinstance(action, EnqueueHandoff) for action in actions):
                self.timings.trigger_events.add(json.loads(raw)["type"])
            await self.apply(actions, arrived)

    async def apply(self, actions: Sequence[Action], arrived: float = 0.0) -> None:
        """Carry out what `CallState` asks for, as `CallSession` does."""
        for action in actions:
            if isinstance(action, EnqueueHandoff):
                self.timings.delivered[action.delegation.handoff_id] = arrived
                await self.queue.put(action.delegation, REPLY_TO)
            elif isinstance(action, SendEvent):
                item = action.payload.get("item") or {}
                if item.get("type") == "function_call_output":
                    handoff_id = f"{self.state.call_id}:{item['call_id']}"
                    self.timings.output_sent[handoff_id] = time.monotonic()
                await self.deliver(self.model.handle_client_event(action.payload))

    async def one_turn(self, answered: asyncio.Event) -> None:
        """The user asks; the model calls the tool; wait for the answer and its spoken reply."""
        answered.clear()
        await self.apply(self.state.inject_user_text(REQUEST))
        await self.deliver(self.model.finish_response())
        await answered.wait()
        await self.deliver(self.model.finish_response())


async def trivial_handler(timings: Timings, delegation: Delegation) -> AsyncIterator[HandlerStep]:
    timings.handler_started[delegation.handoff_id] = time.monotonic()
    yield Answer("2 + 3 = 5")


async def stamp_start(delegation: Delegation) -> str:
    """The handler of the worker-process latency run: answers with the moment it started
    (`time.monotonic()`, one clock for every process on Linux)."""
    return repr(time.monotonic())


async def measure_latency(
    queue: HandoffQueue, count: int, *, in_process: bool = True, hop: StreamHop | None = None
) -> Timings:
    """`count` handoffs one after another through `queue` (after a warm-up, not counted);
    closes `queue`. Without `in_process`, a worker process running `stamp_start` must be
    consuming from the queue. With `hop`, one bare hop is measured before each handoff."""
    timings = Timings()
    run = next(_RUNS)
    worker = Worker(queue, lambda d: trivial_handler(timings, d), name="bench-worker")
    calls: dict[str, SimulatedCall] = {}
    answered = asyncio.Event()

    async def owner() -> None:
        async for event in queue.events(REPLY_TO):
            if event.kind == "result":
                if not in_process:
                    timings.handler_started[event.handoff_id] = float(event.text)
                call = calls[event.call_id]
                await call.apply(call.state.submit_result(event.handoff_id, event.text))
                answered.set()

    if in_process:
        worker.start()
    listener = asyncio.create_task(owner())
    warm: set[str] = set()
    try:
        for n in range(WARMUP + count):
            if n % HANDOFFS_PER_CALL == 0:
                # A handoff id is queued once (its mark, in Redis): each run's calls are new.
                call = SimulatedCall(f"rtc_bench_{run}_{n:08d}", queue, timings)
                calls[call.state.call_id] = call
                await call.join()
            if n == WARMUP:
                warm = set(timings.delivered)
            if hop is not None:
                await hop.measure(counted=n >= WARMUP)
            await call.one_turn(answered)
    finally:
        listener.cancel()
        await worker.stop(grace_s=1.0)
        # Closing also ends the listener should redis-py have swallowed the cancellation,
        # which it can when it arrives while an acknowledgement is in flight.
        await queue.aclose()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    for table in (timings.delivered, timings.handler_started, timings.output_sent):
        for handoff_id in warm:
            table.pop(handoff_id, None)
    return timings


def since_delivery(timings: Timings, table: dict[str, float]) -> list[float]:
    return [table[h] - t0 for h, t0 in timings.delivered.items()]


# Bare Redis


async def measure_ping(url: str, count: int) -> list[float]:
    async with Redis.from_url(url) as client:
        await client.ping()
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await client.ping()
            samples.append(time.perf_counter() - started)
        return samples


class StreamHop:
    """XADD by one client until a second one, already blocked in XREADGROUP, has the entry."""

    STREAM, GROUP = "bench:hop", "readers"

    def __init__(self, url: str) -> None:
        self.producer = Redis.from_url(url)
        self.consumer = Redis.from_url(url)
        self.samples: list[float] = []

    async def __aenter__(self) -> StreamHop:
        await self.producer.xgroup_create(self.STREAM, self.GROUP, id="$", mkstream=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.delete(self.STREAM)
        await self.producer.aclose()
        await self.consumer.aclose()

    async def measure(self, *, counted: bool = True) -> None:
        """One hop; its time goes to `samples` when `counted`."""
        reader = asyncio.create_task(
            self.consumer.xreadgroup(self.GROUP, "reader", {self.STREAM: ">"}, count=1, block=5000)
        )
        # Long enough for the XREADGROUP to reach Redis and block there.
        await asyncio.sleep(0.002)
        started = time.perf_counter()
        await self.producer.xadd(self.STREAM, {"n": 1})
        reply = await reader
        if counted:
            self.samples.append(time.perf_counter() - started)
        await self.consumer.xack(self.STREAM, self.GROUP, reply[0][1][0][0])


# Throughput with worker processes


def bench_delegation(n: int) -> Delegation:
    tool_call_id = f"call_{n:08d}"
    return Delegation(
        call_id=CALL_ID,
        tool_call_id=tool_call_id,
        handoff_id=f"{CALL_ID}:{tool_call_id}",
        item_id=f"item_{n:08d}",
        request=REQUEST,
        transcript_delta=(),
        envelope=f"<realtime_delegation>\n  <input>{REQUEST}</input>\n</realtime_delegation>",
        steering=False,
    )


@dataclass(frozen=True)
class WorkerHandler:
    """A handler for the worker processes of the throughput runs."""

    label: str
    spec: str
    jobs: int


INSTANT = WorkerHandler("handler answering at once", "handoff_latency:answer_at_once", 10000)
BUILTIN = WorkerHandler(
    "built-in handler (progress + answer)", "service.handoffs.builtin:answer", 3000
)
# Answers after 50 ms without using the CPU, like a handler waiting on another service;
# loaded by the workers from this file.
WAITING = WorkerHandler("handler waiting 50 ms", "handoff_latency:wait_50_ms", 800)
STAMP = WorkerHandler("handler answering with its start time", "handoff_latency:stamp_start", 0)


async def answer_at_once(delegation: Delegation) -> str:
    """The `INSTANT` handler."""
    return "5"


async def wait_50_ms(delegation: Delegation) -> str:
    """The `WAITING` handler."""
    await asyncio.sleep(0.05)
    return f"answered {delegation.request!r}"


@contextlib.contextmanager
def worker_processes(url: str, count: int, handler: WorkerHandler) -> Iterator[None]:
    env = {
        **os.environ,
        "CALLBRIDGE_QUEUE": url,
        "CALLBRIDGE_HANDLER": handler.spec,
        "PYTHONPATH": str(Path(__file__).resolve().parent),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--name", f"bench-{n}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(count)
    ]
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)


async def measure_throughput(url: str, workers: int, handler: WorkerHandler) -> float:
    """Handoffs per second, put all at once, until every result is back at the owner."""
    async with Redis.from_url(url) as admin:
        await admin.flushdb()
    queue = RedisStreamQueue(url)
    results = queue.events(REPLY_TO)

    async def answered(count: int) -> None:
        seen = 0
        while seen < count:
            event = await anext(results)
            seen += event.kind in ("result", "failed")

    with worker_processes(url, workers, handler):
        # Warm-up: every worker process is up and consuming before the clock starts.
        for n in range(WARMUP * workers):
            await queue.put(bench_delegation(n), REPLY_TO)
        await answered(WARMUP * workers)
        started = time.perf_counter()
        collect = asyncio.create_task(answered(handler.jobs))
        # Many calls hand off at once: PUTS_IN_FLIGHT puts in flight, as from that many calls.
        first = WARMUP * workers
        for chunk in range(0, handler.jobs, PUTS_IN_FLIGHT):
            await asyncio.gather(
                *(
                    queue.put(bench_delegation(first + n), REPLY_TO)
                    for n in range(chunk, min(chunk + PUTS_IN_FLIGHT, handler.jobs))
                )
            )
        await collect
        elapsed = time.perf_counter() - started
    await results.aclose()
    await queue.aclose()
    return handler.jobs / elapsed


# Redis server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private, unpersisted redis-server on a free port; yields its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        sys.exit("redis-server is not installed")
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", workdir]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait()


# Report


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def row(name: str, samples: Sequence[float]) -> str:
    p50, p99 = (percentile(samples, q) * 1000 for q in (50, 99))
    return f"  {name:<64} {p50:>8.3f} {p99:>8.3f}"


async def run(count: int) -> None:
    with redis_server() as url:
        memory = await measure_latency(MemoryQueue(), count)
        async with StreamHop(url) as local_hop:
            redis = await measure_latency(RedisStreamQueue(url), count, hop=local_hop)
        async with StreamHop(url) as remote_hop:
            with worker_processes(url, 1, STAMP):
                remote = await measure_latency(
                    RedisStreamQueue(url), count, in_process=False, hop=remote_hop
                )
        ping = await measure_ping(url, count)
        rates = {
            (handler, workers): await measure_throughput(url, workers, handler)
            for handler in (INSTANT, BUILTIN, WAITING)
            for workers in (1, 4)
        }

    triggers = ", ".join(sorted(memory.trigger_events | redis.trigger_events))
    remote_start = since_delivery(remote, remote.handler_started)
    print(
        f"handoff latency: {count} handoffs per queue, one at a time, after {WARMUP} warm-up,"
        f" {HANDOFFS_PER_CALL} per call"
    )
    print("  (one process and event loop: CallState + stand-in model + queue + Worker, no WebRTC)")
    print(f"  t0 = the sideband message completing the background_agent call ({triggers})")
    print("       is handed to CallState.feed_raw")
    print(f"  {'':<64} {'p50 ms':>8} {'p99 ms':>8}")
    for name, timings in (("memory queue", memory), ("redis streams", redis)):
        print(
            row(f"{name}: t0 -> handler starts", since_delivery(timings, timings.handler_started))
        )
        print(
            row(
                f"{name}: t0 -> function_call_output sent",
                since_delivery(timings, timings.output_sent),
            )
        )
    print(row("redis streams, `callbridge worker` process: t0 -> handler starts", remote_start))
    print(
        row(
            "redis streams, `callbridge worker` process: t0 -> output sent",
            since_delivery(remote, remote.output_sent),
        )
    )
    print(row("bare redis: PING round trip", ping))
    print(row("bare redis: XADD -> blocked XREADGROUP has the entry", local_hop.samples))
    print(row("  (the same, before each handoff of the worker process run)", remote_hop.samples))
    for name, samples, hop in (
        ("worker in this process", since_delivery(redis, redis.handler_started), local_hop),
        ("worker process", remote_start, remote_hop),
    ):
        print(
            f"  t0 -> handler starts p50 / bare XADD -> XREADGROUP p50, {name}:"
            f" {percentile(samples, 50) / percentile(hop.samples, 50):.2f}x"
        )
    print()
    print(
        f"throughput through redis streams: handoffs put {PUTS_IN_FLIGHT} at a time, answered by"
        " `callbridge worker`"
    )
    print(f"  processes (concurrency 4 each), results back at one owner; {os.cpu_count()} CPUs")
    for (handler, workers), rate in rates.items():
        label = f"{handler.label}, {handler.jobs} handoffs, {workers} worker(s)"
        print(f"  {label:<64} {rate:>8,.0f} handoffs/s")


def main() -> None:
    """Measure everything and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=500, help="handoffs per latency run")
    args = parser.parse_args()
    asyncio.run(run(args.count))


if __name__ == "__main__":
    main()
