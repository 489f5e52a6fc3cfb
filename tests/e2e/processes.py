"""Running callbridge commands as real processes in tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """A `callbridge` subcommand running as its own process, its output in a log file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    def start(self) -> Process:
        """Launch the process."""
        log = self.log_path.open("wb")
        self._log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", *self.args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_http(self, url: str, timeout_s: float = 20.0) -> None:
        """Block until `url` answers at all."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args} exited early:\n{self.output()}")
            try:
                httpx.get(url, timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise TimeoutError(f"{url} did not answer:\n{self.output()}")

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        """Freeze the process (SIGSTOP) for the block, as a stalled machine would be: its
        sockets stay open, but it reads, answers and renews nothing until it goes on (SIGCONT)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def output(self) -> str:
        """What the process has logged so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Terminate (then kill) the process if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def run_callbridge(*args: str, timeout_s: float = 60.0) -> tuple[int, str]:
    """Run `callbridge <args>` to its end, with no `CALLBRIDGE_*` or `OPENAI_API_KEY` from this
    environment; its exit status and what it wrote (stdout and stderr together)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBRIDGE_")}
    env.pop("OPENAI_API_KEY", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    return proc.returncode or 0, out.decode(errors="replace")
