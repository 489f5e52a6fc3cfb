"""The local stand-in for the realtime provider: same HTTP/WebSocket surface, offline model."""

from media.local_provider.app import create_provider_app
from media.local_provider.calls import CallRegistry, LocalCall
from media.local_provider.certificates import self_signed
from media.local_provider.config import LocalProviderConfig
from media.local_provider.context import ProviderContext
from media.local_provider.errors import ProviderError
from media.local_provider.model import Conversation
from media.local_provider.runner import provider_server_config, run_provider, serve_provider
from media.local_provider.ws_protocol import DenialAwareWebSocketProtocol

__all__ = [
    "CallRegistry",
    "Conversation",
    "DenialAwareWebSocketProtocol",
    "LocalCall",
    "LocalProviderConfig",
    "ProviderContext",
    "ProviderError",
    "create_provider_app",
    "provider_server_config",
    "run_provider",
    "self_signed",
    "serve_provider",
]
