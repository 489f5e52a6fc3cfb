"""A throwaway redis-server for end-to-end tests: its own free port, no persistence, restartable.

Tests must never touch a shared Redis (such as one on 6379): each gets a private server that it
can stop and start again on the same port to play an outage.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from service.handoffs.redis_streams import RedisStreamQueue

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


class RedisServer:
    """One redis-server process bound to 127.0.0.1 on a fixed port, working in `workdir`."""

    def __init__(
        self, executable: str, port: int, workdir: Path, options: tuple[str, ...] = ()
    ) -> None:
        self.executable = executable
        self.port = port
        self.workdir = workdir
        self.options = options
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def spawn(cls, executable: str, workdir: Path, options: tuple[str, ...] = ()) -> RedisServer:
        """Start a server on a free port (with more command-line `options`) and return once it
        answers PING."""
        server = cls(executable, _free_port(), workdir, options)
        server.start()
        return server

    @property
    def url(self) -> str:
        """The `redis://` URL clients connect with."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        """The server's log file, for diagnosing a failed start."""
        return self.workdir / "redis.log"

    def start(self) -> None:
        """Run the server (again) on `port` and wait until it answers PING."""
        if self._process is not None:
            raise RuntimeError("redis-server is already running")
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.executable,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                    "--daemonize",
                    "no",
                    *self.options,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_answering()

    def stop(self) -> None:
        """Shut the server down; its data is gone, as with a crash of an unpersisted Redis."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start on the same port, so clients reconnect to the same URL."""
        self.stop()
        self.start()

    def _wait_until_answering(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start; see {self.log}")
            if _answers_ping(self.port):
                return
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING in {_START_TIMEOUT_S:g} s")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server for one test; skips the test when redis-server is not installed."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer.spawn(executable, tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client on the test's redis-server, for looking at keys and streams."""
    async with Redis.from_url(redis_server.url, decode_responses=True) as client:
        yield client


OpenQueue = Callable[..., RedisStreamQueue]


@pytest.fixture
async def open_queue(redis_server: RedisServer) -> AsyncIterator[OpenQueue]:
    """Makes queues on the test's server (short blocking reads keep the loops brisk)."""
    queues: list[RedisStreamQueue] = []

    def make(**options: Any) -> RedisStreamQueue:
        queue = RedisStreamQueue(redis_server.url, **{"block_ms": 50, **options})
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        await queue.aclose()
