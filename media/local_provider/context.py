"""What every route of the provider works with, handed to each group of routes."""

from __future__ import annotations

from dataclasses import dataclass

from media.local_provider.access import Access
from media.local_provider.calls import CallRegistry
from media.local_provider.config import LocalProviderConfig


@dataclass(frozen=True)
class ProviderContext:
    """The provider's settings, its calls, and its credential checks."""

    config: LocalProviderConfig
    calls: CallRegistry
    access: Access
