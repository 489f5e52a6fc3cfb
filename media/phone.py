"""`callbridge ring`: place a simulated phone call through the local stand-in provider.

The stand-in rings the webhook URL (signed like the real provider's `realtime.call.incoming`),
the service decides; once the call is answered and the service's sideband has joined, the
"caller" says each text and plays the WAV, then hangs up (as a phone caller does: the service
is not asked to end the call), and the report lists what the caller heard back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

POLL_S = 0.1
# The stand-in's own subscriber (the caller's ears) plus the service's sideband.
SUBSCRIBERS_WHEN_JOINED = 2


class RingError(Exception):
    """The simulated call could not be placed or followed."""


@dataclass
class PhoneReport:
    """How a simulated phone call went."""

    call_id: str
    state: str
    reject_status_code: int | None = None
    refer_target_uri: str | None = None
    heard: list[str] = field(default_factory=list)


def format_phone_report(report: PhoneReport) -> str:
    """A few human-readable lines."""
    lines = [f"call {report.call_id}: {report.state}"]
    if report.reject_status_code is not None:
        lines.append(f"rejected with SIP {report.reject_status_code}")
    if report.refer_target_uri is not None:
        lines.append(f"referred to {report.refer_target_uri}")
    lines += [f"heard: {text}" for text in report.heard]
    return "\n".join(lines)


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    # Polled: the stand-in's record is read over HTTP; there is nothing to wait on.
    for _ in range(max(1, round(timeout_s / POLL_S))):
        if await check():
            return True
        await asyncio.sleep(POLL_S)
    return False


async def ring(
    provider_url: str,
    webhook_url: str,
    *,
    headers: dict[str, str],
    say: list[str],
    play: bytes | None,
    seconds: float,
) -> PhoneReport:
    """Ring `webhook_url` through the stand-in at `provider_url` and hold the conversation.

    Each turn waits up to `seconds` for a reply. Raises `RingError` when the stand-in refuses
    the ring or the webhook was not answered 2xx.
    """
    try:
        client = httpx.AsyncClient(base_url=provider_url, headers=headers, timeout=30.0)
    except httpx.InvalidURL as exc:
        raise RingError(f"the stand-in's URL {provider_url} cannot be used: {exc}") from None
    async with client:
        try:
            response = await client.post("/local/sip/ring", json={"webhook_url": webhook_url})
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise RingError(f"stand-in unreachable at {provider_url}: {exc}") from None
        if response.status_code != 201:
            raise RingError(f"stand-in refused to ring: {response.status_code} {response.text}")
        call_id = str(response.json()["call_id"])
        webhook_status = response.json()["webhook_status"]
        if webhook_status is None or not 200 <= webhook_status < 300:
            detail = response.json().get("webhook_detail")
            what = (
                f"the stand-in could not reach the webhook at {webhook_url}"
                if webhook_status is None
                else f"the webhook was answered {webhook_status}"
            )
            raise RingError(what + (f": {detail}" if detail else ""))
        leg: dict[str, Any] = {}

        async def refresh() -> dict[str, Any]:
            leg.update((await client.get(f"/local/sip/calls/{call_id}")).json())
            return leg

        async def decided() -> bool:
            return bool((await refresh())["state"] != "ringing")

        async def joined() -> bool:
            call = (await refresh())["call"] or {}
            return int(call.get("subscribers", 0)) >= SUBSCRIBERS_WHEN_JOINED

        await _until(decided, seconds)
        if leg["state"] == "accepted" and await _until(joined, seconds):
            turns: list[dict[str, Any]] = [{"json": {"text": text}} for text in say]
            if play is not None:
                turns.append({"content": play, "headers": {"Content-Type": "audio/wav"}})
            for turn in turns:
                before = len(leg["heard"])
                await client.post(f"/local/sip/calls/{call_id}/say", **turn)

                async def replied(before: int = before) -> bool:
                    return len((await refresh())["heard"]) > before

                await _until(replied, seconds)
            await client.post(f"/local/sip/calls/{call_id}/hangup")
            await refresh()
        return PhoneReport(
            call_id=call_id,
            state=str(leg.get("state", "unknown")),
            reject_status_code=leg.get("reject_status_code"),
            refer_target_uri=leg.get("refer_target_uri"),
            heard=list(leg.get("heard", [])),
        )
