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
from typing import Any

from service.dotted_names import load_callable
from service.handoffs.bounded_read import CHUNK_BYTES, bounded_lines, tail
from service.outbound_http import EndpointClient, endpoint_url
from signaling.realtime import Delegation

PROGRESS_PREFIX = "progress: "

STDERR_TAIL_CHARS = 300
"""The end of a failed command's stderr quoted in its failure."""


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


def _from_command(command: str, max_text_bytes: int) -> Handler:
    """A shell command: envelope on stdin; stdout lines starting `progress: ` are progress,
    the others the answer. Once the answer is over `max_text_bytes` the command is killed and
    what was read is its answer; progress past that many bytes in all is dropped."""
    prefix = PROGRESS_PREFIX.encode()

    async def run(delegation: Delegation) -> AsyncIterator[HandlerStep]:
        proc = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group, so that killing it reaches the shell's children too.
            start_new_session=True,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        # Read alongside stdout: a command filling the stderr pipe would otherwise block.
        stderr = asyncio.create_task(tail(proc.stderr, STDERR_TAIL_CHARS * 4))
        try:
            try:
                proc.stdin.write(delegation.envelope.encode())
                await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                # A command may answer without reading its input; its exit status decides.
                pass
            answer = bytearray()
            progress_bytes = 0
            overflow = False
            async for line in bounded_lines(proc.stdout, len(prefix) + max_text_bytes + 1):
                if line.startswith(prefix):
                    if progress_bytes <= max_text_bytes:
                        progress_bytes += len(line) - len(prefix)
                        yield Progress(line[len(prefix) :].decode(errors="replace"))
                    continue
                answer += b"\n" + line if answer else line
                if len(answer) > max_text_bytes:
                    overflow = True
                    break
            if overflow:
                stderr.cancel()
                # Killed, so its exit status says nothing: the answer is what was read.
                yield Answer(answer[: max_text_bytes + 1].decode(errors="replace"))
                return
            code = await proc.wait()
            errors = (await stderr).decode(errors="replace").strip()
        finally:
            stderr.cancel()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                # What the dead command left in the pipe (at most a pipe's buffer): the pipe
                # must be read to its end for the exit to be seen.
                while await proc.stdout.read(CHUNK_BYTES):
                    pass
                await proc.wait()
        if code != 0:
            raise HandlerError(f"handler command exited with {code}: {errors[-STDERR_TAIL_CHARS:]}")
        yield Answer(answer.decode(errors="replace").strip())

    return run


JSON_ESCAPE_FACTOR = 6
"""Most bytes one byte of text can take in JSON (a control character as `\\u0000`)."""


class _UrlHandler:
    """An HTTP endpoint receiving the delegation as JSON; answers `{"output": ...}` or text.

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
                is_json = response.headers.get("content-type", "").startswith("application/json")
                limit = max_json_bytes + 1 if is_json else max_text_bytes + 1
                raw = bytearray()
                async for chunk in response.aiter_bytes():
                    raw += chunk[: limit - len(raw)]
                    if len(raw) >= limit:
                        break
        except httpx.HTTPError as exc:
            raise HandlerError(f"handler endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise HandlerError(f"handler endpoint answered {response.status_code}")
        if not is_json:
            yield Answer(raw.decode(response.encoding or "utf-8", errors="replace"))
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
