"""`callbridge dial` and `callbridge ring` given odd arguments: each refusal is a line saying
what is wrong and a non-zero status, never a traceback."""

from __future__ import annotations

import base64
import secrets

from fastapi import FastAPI, Response

from media.local_provider import LocalProviderConfig, create_provider_app
from tests.e2e.conftest import Serve
from tests.e2e.processes import free_port, run_callbridge

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _a_webhook_that_answers_200() -> FastAPI:
    app = FastAPI()

    @app.post("/hook")
    async def hook() -> Response:
        return Response(status_code=200)

    return app


async def test_ring_with_a_provider_url_that_is_no_url_says_so_without_a_traceback() -> None:
    webhook = f"http://127.0.0.1:{free_port()}/v1/provider/webhooks"
    code, output = await run_callbridge("ring", webhook, "--provider", "http://[::1")
    assert code == 1, output
    assert "Traceback" not in output, output
    assert "ring failed" in output, output


async def test_ring_with_nan_seconds_is_a_usage_error_not_a_traceback(serve: Serve) -> None:
    provider_url = await serve(
        create_provider_app(LocalProviderConfig(media=False, webhook_secret=SECRET))
    )
    webhook = await serve(_a_webhook_that_answers_200())
    code, output = await run_callbridge(
        "ring", f"{webhook}/hook", "--provider", provider_url, "--seconds", "nan"
    )
    # It used to ring, then fail in its wait: ValueError: cannot convert float NaN to integer.
    assert "Traceback" not in output, output
    assert code == 2, output


async def test_dial_with_a_url_that_is_no_url_says_so_without_a_traceback() -> None:
    code, output = await run_callbridge("dial", "http://[::1/v1/calls", "--seconds", "1")
    assert code == 1, output
    assert "Traceback" not in output, output
    assert "dial failed" in output, output


async def test_dial_with_a_token_that_is_not_ascii_says_so_without_a_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/calls"
    code, output = await run_callbridge("dial", url, "--seconds", "1", "--token", "tökén")
    assert code != 0, output
    assert "Traceback" not in output, output
