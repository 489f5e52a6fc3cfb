"""The OpenAPI document describes every JSON answer by its members, and real answers match it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema_rs import Draft202012Validator

from tests.e2e.conftest import LiveCall, RunningService, StartService
from tests.e2e.waiting import until

JSON_TYPES = ("application/json", "application/health+json", "application/problem+json")
COMPONENTS = "#/components/schemas/"
REQUEST = "please ask the background agent what is 2 plus 3"


@pytest.fixture
async def document(start_service: StartService) -> dict[str, Any]:
    service: RunningService = await start_service(local_media=False)
    async with httpx.AsyncClient(base_url=service.url) as client:
        answer: dict[str, Any] = (await client.get("/openapi.json")).json()
    return answer


def _json_answers(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Where each JSON answer is (operation, status, media type) and its schema."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                for media_type, content in answer.get("content", {}).items():
                    if media_type in JSON_TYPES:
                        yield f"{method} {path} {status} {media_type}", content["schema"]


def _schemas(schema: Any) -> Iterator[dict[str, Any]]:
    """`schema` and every schema inside it."""
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _schemas(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _schemas(value)


def _conforms(document: dict[str, Any], name: str, body: Any) -> list[str]:
    """What in `body` does not match the document's component `name` (checked as Schemathesis
    checks answers, with jsonschema-rs; formats such as `date-time` included)."""
    validator = Draft202012Validator(
        {"$ref": f"{COMPONENTS}{name}", "components": document["components"]},
        validate_formats=True,
    )
    return [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(body)]


async def test_every_json_answer_refers_to_a_component_that_requires_its_members(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    answers = list(_json_answers(document))
    assert len(answers) > 50
    for where, schema in answers:
        assert set(schema) == {"$ref"}, where
        component = schemas[schema["$ref"].removeprefix(COMPONENTS)]
        assert component["type"] == "object", where
        assert component["properties"], where
        assert component["required"], where


async def test_no_object_in_the_answers_schemas_leaves_its_members_unsaid(
    document: dict[str, Any],
) -> None:
    for component in document["components"]["schemas"].values():
        for schema in _schemas(component):
            if schema.get("type") == "object":
                assert "properties" in schema or isinstance(
                    schema.get("additionalProperties"), dict
                ), component["title"]


async def test_a_call_s_answers_with_transcript_and_handoffs_match_their_schemas(
    live_call: LiveCall,
) -> None:
    client, location = live_call.client, live_call.location
    document = (await client.get("/openapi.json")).json()
    sent = await client.post(f"{location}/messages", json={"text": REQUEST})

    async def handed_off() -> bool:
        handoffs = (await client.get(location)).json()["handoffs"]
        return bool(handoffs) and handoffs[0]["state"] == "completed"

    await until(handed_off)
    record = (await client.get(location)).json()
    page = (await client.get("/v1/calls")).json()
    hung_up = (await client.post(f"{location}/hangup")).json()
    deleted = (await client.delete(location)).json()
    assert record["transcript"]
    assert record["handoffs"]
    assert _conforms(document, "MessageSent", sent.json()) == []
    assert _conforms(document, "CallRecord", record) == []
    assert _conforms(document, "CallsPage", page) == []
    assert _conforms(document, "CallSummary", hung_up) == []
    assert _conforms(document, "CallRecord", deleted) == []
