"""Loading the user's handler: a Python callable, a shell command, or an HTTP endpoint.

Every handler is normalised to one shape: an async iterator of `Progress` and finally one
`Answer`, so the worker treats them all alike.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from service.dotted_names import load_callable
from signaling.realtime import Delegation

PROGRESS_PREFIX = "progress: "


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


def _from_callable(func: Callable[[Delegation], Any]) -> Handler:
    """Adapt an async function (returns str) or async generator (yields progress, last = answer)."""

    async def run(delegation: Delegation) -> AsyncIterator[HandlerStep]:
        if inspect.isasyncgenfunction(func):
            last: str | None = None
            async for item in func(delegation):
                if last is not None:
                    yield Progress(last)
                last = str(item)
            yield Answer(last or "")
            return
        result = func(delegation)
        if inspect.isawaitable(result):
            result = await result
        yield Answer(str(result))

    return run


def _from_command(command: str) -> Handler:
    """A shell command: envelope on stdin; stdout lines starting `progress: ` are progress."""

    async def run(delegation: Delegation) -> AsyncIterator[HandlerStep]:
        proc = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        try:
            try:
                proc.stdin.write(delegation.envelope.encode())
                await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                # A command may answer without reading its input; its exit status decides.
                pass
            answer: list[str] = []
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                if line.startswith(PROGRESS_PREFIX):
                    yield Progress(line[len(PROGRESS_PREFIX) :])
                else:
                    answer.append(line)
            stderr = (await proc.stderr.read()).decode(errors="replace").strip()
            code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if code != 0:
            raise HandlerError(f"handler command exited with {code}: {stderr[-300:]}")
        yield Answer("\n".join(answer).strip())

    return run


def _from_url(url: str) -> Handler:
    """An HTTP endpoint receiving the delegation as JSON; answers `{"output": ...}` or text."""
    # Imported only where an HTTP handler is configured: the service itself never needs httpx.
    import httpx

    async def run(delegation: Delegation) -> AsyncIterator[HandlerStep]:
        async with httpx.AsyncClient(timeout=None) as client:
            try:
                response = await client.post(url, json=delegation.to_json())
            except httpx.HTTPError as exc:
                raise HandlerError(f"handler endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise HandlerError(f"handler endpoint answered {response.status_code}")
        if response.headers.get("content-type", "").startswith("application/json"):
            try:
                body = response.json()
            except json.JSONDecodeError:
                raise HandlerError("handler endpoint sent invalid JSON") from None
            if isinstance(body, dict) and isinstance(body.get("output"), str):
                yield Answer(body["output"])
                return
            raise HandlerError('handler endpoint JSON must be {"output": "..."}')
        yield Answer(response.text)

    return run


def load_handler(spec: str) -> Handler:
    """Resolve a handler spec: `module:function`, `cmd:<shell command>` or an http(s) URL."""
    if spec.startswith(("http://", "https://")):
        return _from_url(spec)
    if spec.startswith("cmd:"):
        command = spec[4:].strip()
        if not command:
            raise ValueError("empty handler command")
        return _from_command(command)
    return _from_callable(load_callable(spec, "handler (or cmd:..., or a URL)"))
