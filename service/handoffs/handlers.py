"""Loading the user's handler: a Python callable, a shell command, or an HTTP endpoint.

Every handler is normalised to one shape: an async iterator of `Progress` and finally one
`Answer`, so the worker treats them all alike. Each text is cut to `max_text_bytes` UTF-8
bytes plus one, so that the call owner, which caps handoff text and marks the cut, still sees
it was too long; a command's or endpoint's output is read no further than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

from service.dotted_names import load_callable
from service.handoffs.command_output import CommandOutput
from service.media_types import is_json, text_encoding
from service.outbound_http import EndpointClient, endpoint_url, refusal
from signaling.realtime import Delegation

STDERR_TAIL_CHARS = 300
"""The end of a failed command's stderr quoted in its failure."""
STDERR_TAIL_BYTES = STDERR_TAIL_CHARS * 4
"""The end of a command's stderr kept: room for that many characters of UTF-8."""

OUTPUT_AFTER_EXIT_S = 0.5
"""How long a command's output is still read once it has exited and its process group was
killed. What it wrote is in the pipe by then and read at once; only a process that left the
group (a daemon) can hold the pipe open longer, and what that writes is no part of the answer."""


@dataclass(frozen=True, slots=True)
class Progress:
    """Interim text the model should hear about while work goes on."""

    text: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The handler's final answer."""

    text: str


HandlerStep = Progress | Answer
Handler = Callable[[Delegation], AsyncIterator[HandlerStep]]


class HandlerError(Exception):
    """The handler failed; the message goes to the model as the error output."""


def _from_callable(func: Callable[[Delegation], Any], max_text_bytes: int) -> Handler:
    """Adapt an async function (returns str) or async generator (yields progress, last = answer)."""

    def bounded(item: object) -> str:
        # A character is at least one byte: this many characters are over the cap already.
        return str(item)[: max_text_bytes + 1]

    async def run(delegation: Delegation) -> AsyncIterator[HandlerStep]:
        if inspect.isasyncgenfunction(func):
            last: str | None = None
            async for item in func(delegation):
                if last is not None:
                    yield Progress(last)
                last = bounded(item)
            yield Answer(last or "")
            return
        result = func(delegation)
        if inspect.isawaitable(result):
            result = await result
        yield Answer(bounded(result))

    return run


class _Command(asyncio.SubprocessProtocol):
    """A running command as the event loop reports it: its stdout fed to a `CommandOutput`, the
    end of its stderr kept, its exit, and the closing of its output pipes."""

    def __init__(self, output: CommandOutput) -> None:
        self.output = output
        self.stderr = b""
        self.changed = asyncio.Event()
        self.exited = asyncio.Event()
        self.drained = asyncio.Event()
        self._open_pipes = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self.output.feed(data)
            self.changed.set()
        else:
            self.stderr = (self.stderr + data)[-STDERR_TAIL_BYTES:]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes:
            self.drained.set()

    def process_exited(self) -> None:
        # Reported as soon as the command exits, whoever still holds its pipes.
        self.exited.set()
        self.changed.set()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _from_command(command: str, max_text_bytes: int) -> Handler:
    """A shell command: envelope on stdin; stdout lines starting `progress: ` are progress,
    the others the answer. Its exit status decides: 0, what it wrote until then is the answer;
    else it failed. Once it exits, or its answer is over `max_text_bytes` (then what was read is
    its answer), its whole process group is killed, so no child it left outlives it or holds its
    output open; progress past `max_text_bytes` bytes in all is dropped."""

    async def run(delegation: Delegation) -> AsyncIterator[HandlerStep]:
        output = CommandOutput(max_text_bytes)
        transport, running = await asyncio.get_running_loop().subprocess_shell(
            lambda: _Command(output),
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group, so that killing it reaches the shell's children too.
            start_new_session=True,
        )
        try:
            # A write transport (uvloop's do not subclass asyncio's, so no isinstance check),
            # closed already if the command has exited (uvloop then refuses a write).
            stdin = cast(asyncio.WriteTransport | None, transport.get_pipe_transport(0))
            if stdin is not None and not stdin.is_closing():
                # Sent as the command reads it, then closed; a command may answer without
                # reading it, a broken pipe is then only dropped.
                stdin.write(delegation.envelope.encode())
                stdin.close()
            while not (output.full or running.exited.is_set()):
                await running.changed.wait()
                running.changed.clear()
                for text in output.take_progress():
                    yield Progress(text)
            # It has ended, or answered past the cap: what it started must not run on, nor hold
            # its output open.
            _kill_group(transport.get_pid())
            if not output.full:
                # What it wrote before it exited may still be in the pipe.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(OUTPUT_AFTER_EXIT_S):
                        await running.drained.wait()
                output.end()
                for text in output.take_progress():
                    yield Progress(text)
        finally:
            _kill_group(transport.get_pid())
            await running.exited.wait()
            transport.close()
        code = transport.get_returncode()
        if not output.full and code != 0:
            errors = running.stderr.decode(errors="replace").strip()
            raise HandlerError(f"handler command exited with {code}: {errors[-STDERR_TAIL_CHARS:]}")
        # A full answer: killed, so its exit status says nothing; the answer is what was read.
        yield Answer(output.answer())

    return run


JSON_ESCAPE_FACTOR = 6
"""Most bytes one byte of text can take in JSON (a control character as `\\u0000`)."""


class _UrlHandler:
    """An HTTP endpoint receiving the delegation as JSON; answers `{"output": ...}` (in any JSON
    media type) or text, with a 2xx status: another status, a redirect too, fails the handoff.
    An answer with no body (a 204, say) is the empty answer, as a function's `""` is.

    A text answer is read no further than `max_text_bytes` plus one; a JSON answer longer
    than a JSON-escaped output of that size fails the handoff."""

    def __init__(self, url: str, max_text_bytes: int) -> None:
        self.url = url
        self.max_text_bytes = max_text_bytes
        self.max_json_bytes = JSON_ESCAPE_FACTOR * max_text_bytes + 1024
        self.endpoint = EndpointClient()

    async def __call__(self, delegation: Delegation) -> AsyncIterator[HandlerStep]:
        # Imported only where an HTTP handler is configured: the service never needs httpx.
        import httpx

        max_text_bytes, max_json_bytes = self.max_text_bytes, self.max_json_bytes
        client = self.endpoint.get()
        try:
            async with client.stream("POST", self.url, json=delegation.to_json()) as response:
                refused = refusal(response.status_code)
                if refused is not None:
                    raise HandlerError(f"handler endpoint {refused}")
                json_answer = is_json(response.headers.get("content-type"))
                limit = max_json_bytes + 1 if json_answer else max_text_bytes + 1
                raw = bytearray()
                async for chunk in response.aiter_bytes():
                    raw += chunk[: limit - len(raw)]
                    if len(raw) >= limit:
                        break
        except httpx.HTTPError as exc:
            raise HandlerError(f"handler endpoint unreachable: {type(exc).__name__}") from None
        if not (json_answer and raw):
            encoding = text_encoding(response.headers.get("content-type"))
            yield Answer(raw.decode(encoding, errors="replace"))
            return
        if len(raw) > max_json_bytes:
            raise HandlerError(f"handler endpoint JSON answer over {max_json_bytes} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise HandlerError("handler endpoint sent invalid JSON") from None
        if isinstance(body, dict) and isinstance(body.get("output"), str):
            yield Answer(body["output"][: max_text_bytes + 1])
            return
        raise HandlerError('handler endpoint JSON must be {"output": "..."}')

    async def aclose(self) -> None:
        """Close the connections kept to the endpoint."""
        await self.endpoint.aclose()


def load_handler(spec: str, *, max_text_bytes: int) -> Handler:
    """Resolve a handler spec: `module:function`, `cmd:<shell command>` or an http(s) URL;
    its texts are cut a byte past `max_text_bytes` (see the module docstring). Raise
    `ValueError` on an empty command or a URL that is not http(s) with a host, and what
    `load_callable` raises on a bad name."""
    if spec.startswith("cmd:"):
        command = spec[4:].strip()
        if not command:
            raise ValueError("empty handler command")
        return _from_command(command, max_text_bytes)
    url = endpoint_url(spec)
    if url is not None:
        return _UrlHandler(url, max_text_bytes)
    return _from_callable(load_callable(spec, "handler (or cmd:..., or a URL)"), max_text_bytes)
