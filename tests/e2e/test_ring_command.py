"""`callbridge ring`: a simulated phone caller speaks a WAV file and hears the answer.

No WebRTC anywhere: the stand-in turns the WAV into the caller's audio, transcribes it, and the
conversation runs over the sideband the service joined when it accepted the call.
"""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path

from media.local_provider import (
    DenialAwareWebSocketProtocol,
    LocalProviderConfig,
    create_provider_app,
)
from tests.e2e.conftest import Serve, StartService
from tests.e2e.processes import free_port, run_callbridge
from tests.e2e.waiting import until

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def test_ring_plays_a_wav_to_the_service_and_prints_the_spoken_answer(
    serve: Serve, start_service: StartService, utterance_wavs: dict[str, Path]
) -> None:
    provider_url = await serve(create_provider_app(LocalProviderConfig(webhook_secret=SECRET)))
    service = await start_service(
        provider="openai", provider_url=provider_url, webhook_secret=SECRET
    )
    code, output = await run_callbridge(
        "ring",
        f"{service.url}/v1/provider/webhooks",
        "--provider",
        provider_url,
        "--play",
        str(utterance_wavs["request"]),
        "--seconds",
        "20",
    )
    assert code == 0, output
    assert "hung_up" in output
    heard = [line for line in output.splitlines() if line.startswith("heard: ")]
    assert any("2 + 3 = 5" in line for line in heard), output


async def test_ring_reports_a_webhook_the_stand_in_cannot_reach(serve: Serve) -> None:
    provider_url = await serve(
        create_provider_app(LocalProviderConfig(media=False, webhook_secret=SECRET))
    )
    nowhere = f"http://127.0.0.1:{free_port()}/v1/provider/webhooks"
    code, output = await run_callbridge("ring", nowhere, "--provider", provider_url)
    assert code == 1
    assert f"ring failed: the stand-in could not reach the webhook at {nowhere}" in output


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
    code, output = await run_callbridge(
        "ring", f"{service.url}/v1/provider/webhooks", "--provider", provider_url
    )
    assert code == 1
    assert "401" in output


async def test_ring_hangs_up_as_the_caller_and_the_service_ends_the_call_as_a_remote_hangup(
    serve: Serve, start_service: StartService
) -> None:
    provider_url = await serve(
        create_provider_app(LocalProviderConfig(media=False, webhook_secret=SECRET)),
        ws=DenialAwareWebSocketProtocol,
    )
    service = await start_service(
        provider="openai", provider_url=provider_url, webhook_secret=SECRET
    )
    code, output = await run_callbridge(
        "ring", f"{service.url}/v1/provider/webhooks", "--provider", provider_url
    )
    assert code == 0, output
    outcome = re.search(r"^call (\S+): (\S+)$", output, re.MULTILINE)
    assert outcome is not None, output
    call_id, leg_state = outcome.groups()
    assert leg_state == "hung_up"

    def ended() -> bool:
        call = service.manager.get(call_id)
        return call is not None and not call.live

    await until(ended)
    call = service.manager.get(call_id)
    assert call is not None
    assert (call.state, call.end_reason) == ("ended", "remote_hangup")
