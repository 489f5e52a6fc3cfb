"""What talking to the configured kind of provider takes: its credentials and its call URL.

OpenAI (and the local stand-in) take a bearer key. Azure OpenAI takes an `api-key` header or a
Microsoft Entra ID token, and its call creation carries `webrtcfilter=on`, which limits what the
browser's data channel receives (https://learn.microsoft.com/azure/ai-foundry/openai/how-to/realtime-audio-webrtc).
"""

from __future__ import annotations

import time

from service.settings import Settings
from signaling.credentials import (
    AzureIdentityTokens,
    AzureKey,
    BearerKey,
    Credentials,
    EntraIdToken,
)

AZURE_CALL_QUERY = {"webrtcfilter": "on"}


def provider_credentials(settings: Settings) -> Credentials | None:
    """The provider's credentials, or None when no key is configured (a keyless stand-in).

    Raises `CredentialsError` for Entra ID auth without azure-identity installed.
    """
    key = settings.api_key_value()
    if settings.provider == "azure":
        if settings.azure_auth == "entra-id":
            return EntraIdToken(AzureIdentityTokens(), time.time)
        return AzureKey(key) if key else None
    return BearerKey(key) if key else None


def call_creation_query(settings: Settings) -> dict[str, str]:
    """Query parameters of `POST /v1/realtime/calls` for this kind of provider."""
    return dict(AZURE_CALL_QUERY) if settings.provider == "azure" else {}
