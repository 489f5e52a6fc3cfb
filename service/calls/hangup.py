"""Hanging a call up at the provider once the call core has ended it.

A call left up at the provider keeps costing money, so a transient failure is retried a few
times, with a growing pause (https://tenacity.readthedocs.io/).
"""

from __future__ import annotations

import logging

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_incrementing,
)

from signaling.ids import CallId
from signaling.provider import CallNotFound, ProviderClient, ProviderError

HANGUP_ATTEMPTS = 3
HANGUP_PAUSE_S = 0.2
"""Seconds between the first and second attempt; each later pause is this much longer."""


async def hang_up(
    provider: ProviderClient, call_id: CallId, log: logging.LoggerAdapter[logging.Logger]
) -> None:
    """Ask the provider to end `call_id`, up to `HANGUP_ATTEMPTS` times; never raises.

    A call the provider does not know (`CallNotFound`) has already ended. Each failed attempt
    is logged as a warning with the provider's message, which never holds the key.
    """

    def failed(attempt: RetryCallState) -> None:
        exc = attempt.outcome.exception() if attempt.outcome else None
        log.warning("hangup attempt %d failed: %s", attempt.attempt_number, exc)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(ProviderError) & retry_if_not_exception_type(CallNotFound),
        stop=stop_after_attempt(HANGUP_ATTEMPTS),
        wait=wait_incrementing(start=HANGUP_PAUSE_S, increment=HANGUP_PAUSE_S),
        after=failed,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                await provider.hangup(call_id)
    except ProviderError:
        pass  # not known (already ended), or every attempt failed and was logged
