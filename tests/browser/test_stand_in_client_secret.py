"""A browser on another origin calls the stand-in provider directly with an ephemeral key.

The page (served by callbridge, so a different origin from the provider) does what a browser
client of the real API does with a client secret: a WebRTC offer POSTed to
`/v1/realtime/calls` with `Authorization: Bearer ek_…`, then `session.created` on `oai-events`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest

from media.local_provider.config import LocalProviderConfig
from tests.browser.conftest import LaunchBrowser
from tests.e2e.stand_in import Provider, local_provider

try:
    import playwright.async_api  # noqa: F401
except ImportError:  # the conftest fixtures skip (or fail under CI) with the reason
    if os.environ.get("CI", "").strip().lower() == "true":
        raise
    pytest.skip("Playwright is not installed", allow_module_level=True)

API_KEY = "sk-browser-secret"

CALL_WITH_EPHEMERAL_KEY = """
async ([callsUrl, key]) => {
  const pc = new RTCPeerConnection();
  const channel = pc.createDataChannel("oai-events");
  const created = new Promise((resolve) => {
    channel.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "session.created") resolve(event);
    };
  });
  pc.addTransceiver("audio");
  await pc.setLocalDescription(await pc.createOffer());
  const answer = await fetch(callsUrl, {
    method: "POST",
    body: pc.localDescription.sdp,
    headers: {"Authorization": `Bearer ${key}`, "Content-Type": "application/sdp"},
  });
  const location = answer.headers.get("Location");
  await pc.setRemoteDescription({type: "answer", sdp: await answer.text()});
  const event = await created;
  pc.close();
  return {status: answer.status, location, instructions: event.session.instructions};
}
"""


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with local_provider(LocalProviderConfig(api_key=API_KEY)) as running:
        yield running


async def test_a_browser_calls_the_stand_in_with_an_ephemeral_key(
    browser: LaunchBrowser, service_url: str, provider: Provider
) -> None:
    async with httpx.AsyncClient() as http:
        minted = await http.post(
            provider.base_url + "/v1/realtime/client_secrets",
            json={"session": {"type": "realtime", "instructions": "From the secret."}},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    key = minted.json()["value"]
    page = await (await browser()).new_page()
    await page.goto(f"{service_url}/")

    result = await page.evaluate(CALL_WITH_EPHEMERAL_KEY, [provider.calls_url, key])

    assert result["status"] == 201
    assert result["location"].startswith("/v1/realtime/calls/rtc_")
    assert result["instructions"] == "From the secret."
