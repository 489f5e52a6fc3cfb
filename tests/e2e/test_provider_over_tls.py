"""callbridge against a provider that, like the real one, speaks only https and wss: the
stand-in served over TLS (`callbridge provider --tls-cert --tls-key`)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from media.local_provider import self_signed
from tests.e2e.conftest import STAND_IN_KEY, StartService
from tests.e2e.processes import Process, free_port
from tests.e2e.sse import ready_call
from tests.unit.sdp_samples import AIORTC_OFFER


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key (PEM files)."""
    return self_signed(tmp_path)


@pytest.fixture
def tls_provider(certificate: tuple[Path, Path], tmp_path: Path) -> Iterator[str]:
    """The stand-in in no-media mode served over TLS; its https base URL."""
    port = free_port()
    cert, key = certificate
    provider = Process(
        ["provider", "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)],
        {"CALLBRIDGE_LOCAL_MEDIA": "false", "CALLBRIDGE_API_KEY": STAND_IN_KEY},
        tmp_path / "provider.log",
    ).start()
    url = f"https://127.0.0.1:{port}"
    trusting = ssl.create_default_context(cafile=cert)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/healthz", verify=trusting, timeout=0.5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, provider.output()
                time.sleep(0.1)
        yield url
    finally:
        provider.stop()


async def test_a_call_is_created_and_its_session_set_up_over_https_and_wss(
    tls_provider: str,
    start_service: StartService,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    service = await start_service(provider="openai", provider_url=tls_provider)
    async with httpx.AsyncClient(base_url=service.url) as client:
        location = await ready_call(client, service.url)
        assert (await client.delete(location)).status_code == 200


async def _start_unverified(
    tls_provider: str, start_service: StartService, monkeypatch: pytest.MonkeyPatch
) -> httpx.Response:
    """A call start through a service that does not trust the provider's certificate."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    service = await start_service(provider="openai", provider_url=tls_provider)
    async with httpx.AsyncClient(base_url=service.url) as client:
        return await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
        )


async def test_a_provider_it_cannot_verify_is_refused_with_a_502(
    tls_provider: str, start_service: StartService, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = await _start_unverified(tls_provider, start_service, monkeypatch)
    assert response.status_code == 502, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    provider = Process(
        ["provider", "--port", str(free_port()), "--tls-cert", str(cert)],
        {"CALLBRIDGE_LOCAL_MEDIA": "false"},
        tmp_path / "provider.log",
    ).start()
    assert provider.proc is not None
    assert provider.proc.wait(timeout=30) == 2
    assert "--tls-cert and --tls-key go together" in provider.output()


def test_a_certificate_that_cannot_be_loaded_is_refused_naming_the_files(tmp_path: Path) -> None:
    _, key = self_signed(tmp_path)
    missing = tmp_path / "missing.pem"
    provider = Process(
        ["provider", "--port", str(free_port()), "--tls-cert", str(missing), "--tls-key", str(key)],
        {"CALLBRIDGE_LOCAL_MEDIA": "false"},
        tmp_path / "provider.log",
    ).start()
    assert provider.proc is not None
    assert provider.proc.wait(timeout=30) == 2
    assert f"cannot serve TLS with {missing} and {key}" in provider.output()
    assert "Traceback" not in provider.output()


async def test_a_provider_it_cannot_verify_is_logged_with_the_reason(
    tls_provider: str,
    start_service: StartService,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = await _start_unverified(tls_provider, start_service, monkeypatch)
    assert response.status_code == 502
    failures = [r for r in caplog.records if "failed at the provider" in r.getMessage()]
    assert len(failures) == 1
    assert "certificate verify failed" in failures[0].getMessage()
    assert "certificate verify failed" not in response.text
