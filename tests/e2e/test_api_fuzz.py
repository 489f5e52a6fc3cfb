"""Schema-driven testing of the HTTP API with Schemathesis, every check on (response conformance
included), stateless and stateful: the OpenAPI document says exactly what the API answers.

It runs twice: open (no token configured, so the document declares no security) and with tokens
(API tokens, call tokens and the ops token), where Schemathesis is given the token each security
scheme takes and `ignored_auth` checks that every operation declaring one refuses a request
without it or with a wrong one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import Process, free_port

HERE = Path(__file__).parent
TOKEN = "fuzz-api-token-0123456789"
OPS_TOKEN = "fuzz-ops-token-0123456789"
# The tokens `schemathesis.toml` gives each security scheme, named by these variables.
SCHEME_TOKENS = {"FUZZ_CALLER_TOKEN": TOKEN, "FUZZ_OPS_TOKEN": OPS_TOKEN}
MODES = {
    "open": {},
    "tokens": {
        "CALLBRIDGE_API_TOKENS": TOKEN,
        "CALLBRIDGE_CALL_TOKEN_SECRET": "fuzz-call-token-secret-0123456789",
        "CALLBRIDGE_OPS_TOKEN": OPS_TOKEN,
    },
}


@pytest.fixture(scope="module", params=list(MODES))
def service_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    log: Path = tmp_path_factory.mktemp("fuzz") / "serve.log"
    serve = Process(
        ["serve", "--port", str(port)],
        {
            **MODES[request.param],
            "CALLBRIDGE_RATE_LIMIT_PER_MINUTE": "1000000",
            "CALLBRIDGE_RATE_LIMIT_BURST": "1000000",
            # The stateful phase starts real calls; they must neither pile up nor fill the cap.
            "CALLBRIDGE_MAX_CALLS": "10000",
            "CALLBRIDGE_IDLE_TIMEOUT_S": "3",
            "CALLBRIDGE_LOCAL_MEDIA": "false",
        },
        log,
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        serve.wait_http(f"{url}/healthz")
        yield url
    finally:
        serve.stop()


@pytest.mark.timeout(900)
def test_every_schemathesis_check_passes_on_every_operation_and_in_stateful_runs(
    service_url: str, tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{service_url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "25",
        "--workers",
        "1",
        "--request-timeout",
        "15",
        "--seed",
        "1",
        "--no-color",
    ]
    env = {
        **os.environ,
        **SCHEME_TOKENS,
        "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
        "PYTHONPATH": str(HERE.parents[1]),
    }
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert "✅  Stateful" in result.stdout, "the stateful phase ran and passed"
