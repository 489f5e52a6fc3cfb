"""Schema-driven fuzzing of the HTTP API (schemathesis): no input produces a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.e2e.processes import Process, free_port


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log: Path = tmp_path_factory.mktemp("fuzz") / "serve.log"
    serve = Process(
        ["serve", "--port", str(port)],
        {"CALLBRIDGE_RATE_LIMIT_PER_MINUTE": "100000", "CALLBRIDGE_RATE_LIMIT_BURST": "100000"},
        log,
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        serve.wait_http(f"{url}/healthz")
        yield url
    finally:
        serve.stop()


def test_no_operation_answers_with_a_server_error(service_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzable = [op for op in operations if not op.path.endswith("/events")]
    assert len(fuzzable) >= 8
    failures: list[str] = []
    for operation in fuzzable:

        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=service_url, timeout=10)
            where = f"{case.method} {case.formatted_path}"
            if response.status_code >= 500:
                failures.append(f"{where}: {response.status_code} {response.text[:200]}")
            elif response.status_code >= 400:
                content_type = response.headers.get("content-type", [""])[0]
                assert content_type.startswith("application/problem+json"), where

        run()
    assert failures == []
