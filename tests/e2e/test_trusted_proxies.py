"""A reverse proxy named in `CALLBRIDGE_FORWARDED_ALLOW_IPS` is trusted to say who its clients
are (`X-Forwarded-For`), so the per-client call-start rate limit counts each of them; any other
peer's header is ignored, and the peer itself is counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import Process, free_port
from tests.unit.sdp_samples import AIORTC_OFFER


def _serve(tmp_path: Path, **env: str) -> Iterator[str]:
    port = free_port()
    process = Process(
        ["serve"],
        {
            "CALLBRIDGE_PROVIDER": "openai",
            "CALLBRIDGE_API_KEY": "sk-" + "x" * 40,
            # Nobody listens there: a start that passes the rate limit fails at the provider.
            "CALLBRIDGE_PROVIDER_URL": f"http://127.0.0.1:{free_port()}",
            "CALLBRIDGE_PORT": str(port),
            "CALLBRIDGE_RATE_LIMIT_BURST": "1",
            "CALLBRIDGE_RATE_LIMIT_PER_MINUTE": "1",
            **{f"CALLBRIDGE_{name.upper()}": value for name, value in env.items()},
        },
        tmp_path / "serve.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_http(f"{url}/healthz")
        yield url
    finally:
        process.stop()


@pytest.fixture
def behind_a_trusted_proxy(tmp_path: Path) -> Iterator[str]:
    yield from _serve(tmp_path, forwarded_allow_ips="127.0.0.0/8")


@pytest.fixture
def with_no_trusted_proxy(tmp_path: Path) -> Iterator[str]:
    yield from _serve(tmp_path, forwarded_allow_ips="192.0.2.1")


def _start_from(url: str, client: str) -> int:
    response = httpx.post(
        f"{url}/v1/calls",
        content=AIORTC_OFFER,
        headers={"content-type": "application/sdp", "x-forwarded-for": client},
        timeout=10,
    )
    return response.status_code


def test_clients_behind_a_trusted_proxy_are_rate_limited_each_on_their_own(
    behind_a_trusted_proxy: str,
) -> None:
    _start_from(behind_a_trusted_proxy, "203.0.113.1")
    assert _start_from(behind_a_trusted_proxy, "203.0.113.2") != 429
    assert _start_from(behind_a_trusted_proxy, "203.0.113.1") == 429


def test_an_untrusted_peer_is_rate_limited_whatever_client_it_names(
    with_no_trusted_proxy: str,
) -> None:
    _start_from(with_no_trusted_proxy, "203.0.113.1")
    assert _start_from(with_no_trusted_proxy, "203.0.113.2") == 429
