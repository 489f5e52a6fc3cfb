"""What talking to the configured kind of provider takes: its credentials and its call URL.

OpenAI (and the local stand-in) take a bearer key. Azure OpenAI takes an `api-key` header or a
Microsoft Entra ID token, and its call creation carries `webrtcfilter=on`, which limits what the
browser's data channel receives (https://learn.microsoft.com/azure/ai-foundry/openai/how-to/realtime-audio-webrtc).
"""

from __future__ import annotations

import importlib.util
import time

from service.settings import ConfigurationError, Settings
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


def check_credentials(settings: Settings) -> None:
    """Raise `ConfigurationError` when a real provider is configured with nothing to
    authenticate with (every call would fail with 401 while the service reports ready).

    Only the `local` provider may go keyless (the stand-in, embedded or separate, accepts
    calls without a key when it was not given one); Azure with Entra ID needs no key.
    """
    if settings.provider == "local" or settings.api_key_value():
        return
    if settings.provider == "azure" and settings.azure_auth == "entra-id":
        try:
            installed = importlib.util.find_spec("azure.identity") is not None
        except ModuleNotFoundError:
            installed = False
        if not installed:
            raise ConfigurationError(
                "CALLBRIDGE_AZURE_AUTH=entra-id needs azure-identity: "
                "pip install 'callbridge[azure]'"
            )
        return
    hint = " (or CALLBRIDGE_AZURE_AUTH=entra-id)" if settings.provider == "azure" else ""
    raise ConfigurationError(
        f"CALLBRIDGE_PROVIDER={settings.provider} needs CALLBRIDGE_API_KEY{hint}"
    )


def call_creation_query(settings: Settings) -> dict[str, str]:
    """Query parameters of `POST /v1/realtime/calls` for this kind of provider."""
    return dict(AZURE_CALL_QUERY) if settings.provider == "azure" else {}
