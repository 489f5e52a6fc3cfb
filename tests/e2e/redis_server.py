"""A throwaway redis-server for end-to-end tests: its own free port, no persistence, restartable.

Tests must never touch a shared Redis (such as one on 6379): each gets a private server that it
can stop and start again on the same port to play an outage.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from service.handoffs.redis_streams import RedisStreamQueue
from service.redis_urls import DEFAULT_PORT

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


class RedisServer:
    """One redis-server process bound to a loopback address (127.0.0.1 unless `host` says
    otherwise) on a fixed port, and to the Unix socket `unix_socket` if given, working in
    `workdir`."""

    def __init__(
        self,
        executable: str,
        port: int,
        workdir: Path,
        options: tuple[str, ...] = (),
        *,
        host: str = "127.0.0.1",
        unix_socket: Path | None = None,
    ) -> None:
        self.executable = executable
        self.port = port
        self.workdir = workdir
        self.options = options
        self.host = host
        self.unix_socket = unix_socket
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def spawn(
        cls,
        executable: str,
        workdir: Path,
        options: tuple[str, ...] = (),
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        unix_socket: Path | None = None,
    ) -> RedisServer:
        """Start a server on `host` and `port` (a free port unless given), and on the Unix
        socket `unix_socket` if given (with more command-line `options`), and return once it
        answers PING."""
        server = cls(
            executable,
            _free_port(host) if port is None else port,
            workdir,
            options,
            host=host,
            unix_socket=unix_socket,
        )
        server.start()
        return server

    @property
    def url(self) -> str:
        """The `redis://` URL clients connect with."""
        return f"redis://{self.host}:{self.port}/0"

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
                    self.host,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                    "--daemonize",
                    "no",
                    *self._socket_options(),
                    *self.options,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_answering()

    def _socket_options(self) -> tuple[str, ...]:
        if self.unix_socket is None:
            return ()
        return ("--unixsocket", str(self.unix_socket), "--unixsocketperm", "700")

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
            if _answers_ping(self.host, self.port):
                return
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING in {_START_TIMEOUT_S:g} s")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def free_loopback_host(port: int) -> str | None:
    """A loopback address other than 127.0.0.1 (Linux answers on all of 127.0.0.0/8) where
    nobody listens on `port`, or None: a way to serve on Redis' default port beside a shared
    Redis that holds it on 127.0.0.1."""
    for last in range(2, 255):
        host = f"127.0.0.{last}"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return host
    return None


def _answers_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _executable() -> str:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed")
    return executable


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server for one test; skips the test when redis-server is not installed."""
    server = RedisServer.spawn(_executable(), tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server_on_the_default_port(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on Redis' default port, for URLs that name no port: on a
    loopback address other than 127.0.0.1, where a shared Redis may hold that port."""
    executable = _executable()
    host = free_loopback_host(DEFAULT_PORT)
    if host is None:
        pytest.skip(f"no loopback address is free on port {DEFAULT_PORT}")
    server = RedisServer.spawn(executable, tmp_path, host=host, port=DEFAULT_PORT)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server_on_a_unix_socket(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server that also listens on a Unix socket (`unix_socket`)."""
    executable = _executable()
    # Not under tmp_path: a socket's path holds at most 107 bytes, and a test's may be longer.
    with tempfile.TemporaryDirectory(prefix="redis-") as directory:
        server = RedisServer.spawn(executable, tmp_path, unix_socket=Path(directory) / "sock")
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
