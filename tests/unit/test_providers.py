"""What each provider kind takes: Azure's base URL, call-creation query and credentials."""

from __future__ import annotations

import asyncio

from service.providers import call_creation_query, provider_credentials
from service.settings import Settings


def test_azure_call_creation_asks_for_the_webrtc_filter() -> None:
    assert call_creation_query(Settings(provider="azure", azure_resource="res")) == {
        "webrtcfilter": "on"
    }
    assert call_creation_query(Settings(provider="openai")) == {}


def test_the_azure_base_url_is_built_from_the_resource_name() -> None:
    settings = Settings(provider="azure", azure_resource="contoso-voice")
    assert settings.provider_base_url() == "https://contoso-voice.openai.azure.com/openai"


def test_azure_authenticates_with_the_api_key_header() -> None:
    credentials = provider_credentials(
        Settings(provider="azure", azure_resource="res", api_key="k")
    )
    assert credentials is not None
    assert asyncio.run(credentials.headers()) == {"api-key": "k"}


def test_openai_authenticates_with_a_bearer_key() -> None:
    credentials = provider_credentials(Settings(provider="openai", api_key="k"))
    assert credentials is not None
    assert asyncio.run(credentials.headers()) == {"Authorization": "Bearer k"}
