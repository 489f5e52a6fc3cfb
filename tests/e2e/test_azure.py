"""Provider kind `azure`: the WebRTC call flow against the stand-in playing Azure OpenAI.

The stand-in in its `azure` flavor serves the API only under `/openai` and accepts only the
`api-key` header, so a call that starts, joins its sideband, hands off and hangs up shows every
request took Azure's paths and auth.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from media.local_provider import LocalProviderConfig, create_provider_app
from media.peer import CallClient, DialError
from tests.e2e.conftest import Serve, StartService
from tests.e2e.waiting import until

AZURE_KEY = "azure-test-key"
REQUEST = "please ask the background agent what is 2 plus 3"


@pytest.fixture
async def azure_stand_in(serve: Serve) -> str:
    return await serve(create_provider_app(LocalProviderConfig(api_key=AZURE_KEY, flavor="azure")))


async def _stand_in_record(base_url: str, call_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(headers={"api-key": AZURE_KEY}) as client:
        response = await client.get(f"{base_url}/openai/v1/realtime/calls/{call_id}")
    assert response.status_code == 200
    record: dict[str, Any] = response.json()
    return record


async def test_a_webrtc_call_through_azure_hands_off_and_hangs_up(
    start_service: StartService, azure_stand_in: str
) -> None:
    service = await start_service(
        provider="azure", provider_url=f"{azure_stand_in}/openai", api_key=AZURE_KEY
    )
    async with CallClient(f"{service.url}/v1/calls") as call:
        assert call.location is not None
        call_id = call.location.rsplit("/", 1)[1]
        async with httpx.AsyncClient(base_url=service.url) as client:
            response = await client.post(f"/v1/calls/{call_id}/messages", json={"text": REQUEST})
            assert response.status_code == 202

            async def delivered() -> bool:
                body = (await client.get(f"/v1/calls/{call_id}")).json()
                return bool(body["handoffs"]) and body["handoffs"][0]["delivered_to_model"]

            await until(delivered)
            handoff = (await client.get(f"/v1/calls/{call_id}")).json()["handoffs"][0]
        assert "2 + 3 = 5" in handoff["output"]
        record = await _stand_in_record(azure_stand_in, call_id)
        assert record["function_call_outputs"] == {handoff["tool_call_id"]: 1}
        assert "session.update" in record["client_event_types"]
        assert await call.hangup() == 200
    assert (await _stand_in_record(azure_stand_in, call_id))["state"] == "ended"


async def test_a_bearer_key_is_refused_by_the_azure_stand_in(
    start_service: StartService, azure_stand_in: str
) -> None:
    service = await start_service(
        provider="openai", provider_url=f"{azure_stand_in}/openai", api_key=AZURE_KEY
    )
    with pytest.raises(DialError) as failure:
        async with CallClient(f"{service.url}/v1/calls"):
            pass
    assert failure.value.status == 502
    assert service.manager.active() == []


async def test_azure_paths_need_the_openai_prefix(
    start_service: StartService, azure_stand_in: str
) -> None:
    service = await start_service(provider="azure", provider_url=azure_stand_in, api_key=AZURE_KEY)
    with pytest.raises(DialError) as failure:
        async with CallClient(f"{service.url}/v1/calls"):
            pass
    assert failure.value.status == 502
