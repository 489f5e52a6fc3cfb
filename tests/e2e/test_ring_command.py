"""`callbridge ring`: a simulated phone caller speaks a WAV file and hears the answer.

No WebRTC anywhere: the stand-in turns the WAV into the caller's audio, transcribes it, and the
conversation runs over the sideband the service joined when it accepted the call.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import sys
from pathlib import Path

from media.local_provider import LocalProviderConfig, create_provider_app
from tests.e2e.conftest import Serve, StartService

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def _ring(*args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBRIDGE_")}
    env.pop("OPENAI_API_KEY", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        "ring",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60.0)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_ring_plays_a_wav_to_the_service_and_prints_the_spoken_answer(
    serve: Serve, start_service: StartService, utterance_wavs: dict[str, Path]
) -> None:
    provider_url = await serve(create_provider_app(LocalProviderConfig(webhook_secret=SECRET)))
    service = await start_service(
        provider="openai", provider_url=provider_url, webhook_secret=SECRET
    )
    code, output = await _ring(
        f"{service.url}/v1/provider/webhooks",
        "--provider",
        provider_url,
        "--play",
        str(utterance_wavs["request"]),
        "--seconds",
        "20",
    )
    assert code == 0, output
    assert "accepted" in output
    heard = [line for line in output.splitlines() if line.startswith("heard: ")]
    assert any("2 + 3 = 5" in line for line in heard), output


async def test_ring_reports_a_webhook_the_service_refuses(
    serve: Serve, start_service: StartService
) -> None:
    provider_url = await serve(
        create_provider_app(LocalProviderConfig(media=False, webhook_secret=SECRET))
    )
    other = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    service = await start_service(
        provider="openai", provider_url=provider_url, webhook_secret=other
    )
    code, output = await _ring(f"{service.url}/v1/provider/webhooks", "--provider", provider_url)
    assert code == 1
    assert "401" in output
