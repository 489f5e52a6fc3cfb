"""The OpenAPI document declares the tokens the API asks for, as the running service asks for
them: a bearer scheme, on the operations that take it, only while tokens are configured."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from tests.e2e.conftest import StartService

API_TOKEN = "api-token-0123456789abcdef"
OPS_TOKEN = "ops-token-0123456789abcdef"
CALL_TOKEN_SECRET = "call-token-secret-0123456789abcdef"
CALLER: list[dict[str, list[str]]] = [{"callerToken": []}]
OPS: list[dict[str, list[str]]] = [{"opsToken": []}]
# Each guarded operation and the security it declares with every token configured.
GUARDED = {
    ("post", "/v1/calls"): CALLER,
    ("options", "/v1/calls"): [{}, *CALLER],
    ("get", "/v1/calls"): OPS,
    ("head", "/v1/calls"): OPS,
    ("get", "/v1/calls/{call_id}"): CALLER,
    ("head", "/v1/calls/{call_id}"): CALLER,
    ("delete", "/v1/calls/{call_id}"): CALLER,
    ("post", "/v1/calls/{call_id}/hangup"): CALLER,
    ("post", "/v1/calls/{call_id}/messages"): CALLER,
    ("post", "/v1/calls/{call_id}/session"): CALLER,
    ("post", "/v1/calls/{call_id}/refer"): CALLER,
    ("get", "/v1/calls/{call_id}/events"): CALLER,
    ("head", "/v1/calls/{call_id}/events"): CALLER,
    ("post", "/v1/call-tokens"): CALLER,
    ("get", "/metrics"): OPS,
    ("head", "/metrics"): OPS,
}


async def _document(start_service: StartService, **settings: Any) -> dict[str, Any]:
    service = await start_service(local_media=False, **settings)
    async with httpx.AsyncClient(base_url=service.url) as client:
        document: dict[str, Any] = (await client.get("/openapi.json")).json()
    return document


def _operations(document: dict[str, Any]) -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield (method, path), operation


@pytest.mark.parametrize(
    "tokens",
    [{}, {"api_tokens": API_TOKEN, "call_token_secret": CALL_TOKEN_SECRET, "ops_token": OPS_TOKEN}],
    ids=["open", "tokens"],
)
async def test_the_document_is_valid_openapi_3_1(
    start_service: StartService, tokens: dict[str, str]
) -> None:
    document = await _document(start_service, **tokens)
    assert document["openapi"].startswith("3.1.")
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in OpenAPIV31SpecValidator(document).iter_errors()
    ]
    assert errors == []


async def test_without_tokens_no_operation_declares_a_token_or_a_refusal_for_one(
    start_service: StartService,
) -> None:
    document = await _document(start_service)
    assert "securitySchemes" not in document["components"]
    assert "security" not in document
    for where, operation in _operations(document):
        assert "security" not in operation, where
        if where != ("post", "/v1/provider/webhooks"):
            assert "401" not in operation["responses"], where


async def test_with_every_token_configured_exactly_the_guarded_operations_declare_one(
    start_service: StartService,
) -> None:
    document = await _document(
        start_service,
        api_tokens=API_TOKEN,
        call_token_secret=CALL_TOKEN_SECRET,
        ops_token=OPS_TOKEN,
    )
    declared = {where: op["security"] for where, op in _operations(document) if "security" in op}
    assert declared == GUARDED
    assert "security" not in document


async def test_the_schemes_are_http_bearer_and_say_which_tokens_they_take(
    start_service: StartService,
) -> None:
    document = await _document(start_service, api_tokens=API_TOKEN, ops_token=OPS_TOKEN)
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) == {"callerToken", "opsToken"}
    for scheme in schemes.values():
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "CALLBRIDGE_API_TOKENS" in schemes["callerToken"]["description"]
    assert "POST /v1/call-tokens" in schemes["callerToken"]["description"]
    assert "CALLBRIDGE_OPS_TOKEN" in schemes["opsToken"]["description"]


async def test_with_api_tokens_but_no_ops_token_the_ops_routes_declare_no_token_or_401(
    start_service: StartService,
) -> None:
    document = await _document(start_service, api_tokens=API_TOKEN)
    assert set(document["components"]["securitySchemes"]) == {"callerToken"}
    for path, method in (("/metrics", "get"), ("/v1/calls", "get")):
        operation = document["paths"][path][method]
        assert "security" not in operation, path
        assert "401" not in operation["responses"], path


async def test_every_operation_asking_for_a_token_declares_a_401_with_its_bearer_challenge(
    start_service: StartService,
) -> None:
    document = await _document(start_service, api_tokens=API_TOKEN, ops_token=OPS_TOKEN)
    for where, security in GUARDED.items():
        if {} in security:
            continue
        method, path = where
        answers = document["paths"][path][method]["responses"]
        challenge = answers["401"]["headers"]["WWW-Authenticate"]
        assert challenge["required"] is True, where
        assert "RFC 6750 §3" in challenge["description"], where


async def test_the_webhook_s_401_promises_no_bearer_challenge(
    start_service: StartService,
) -> None:
    # Its authentication is the delivery's signature, so its 401 does not carry one.
    document = await _document(start_service, api_tokens=API_TOKEN)
    webhook = document["paths"]["/v1/provider/webhooks"]["post"]
    assert "security" not in webhook
    assert "WWW-Authenticate" not in webhook["responses"]["401"]["headers"]
