"""What an operator reads when Redis fails: an outage, or Redis refusing us.

An outage is logged by whatever met it, as a WARNING saying what waits; each loop retries
every second or two while it lasts, so each kind of line (its logger and message) is a WARNING
at most every `REPEAT_S`, and at DEBUG in between. A refusal of our credentials or of our
user's permissions (`service.redis_client.redis_refusal`) is a configuration to put right, not
an outage: every loop of the process meets it at once, and again on each retry, so it is one
ERROR line for the whole process, said again at most every `REPEAT_S` while it lasts. Both are
waited out: the service carries on once Redis answers (or accepts us) again.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from service.redis_client import redis_refusal

REPEAT_S: Final = 60.0
"""How often one refusal, or one kind of outage line, is said again while it lasts, in
seconds."""

_log = logging.getLogger("callbridge.redis")


class RepeatedReports:
    """When each report was last made, to make it once every `repeat_s` seconds (the time is
    given: monotonic seconds)."""

    def __init__(self, repeat_s: float) -> None:
        self._repeat_s = repeat_s
        # One entry per reason: a handful (the credentials, a command our user may not run,
        # each outage line of the code).
        self._last: dict[str, float] = {}

    def due(self, reason: str, now: float) -> bool:
        """Whether `reason` is to be reported at `now`; if so, it is counted as reported."""
        last = self._last.get(reason)
        if last is not None and now - last < self._repeat_s:
            return False
        self._last[reason] = now
        return True


# One for the process: the operator is told once, whichever loop met the refusal first.
_refusals: Final = RepeatedReports(REPEAT_S)
_outages: Final = RepeatedReports(REPEAT_S)


def log_redis_failure(
    logger: logging.Logger, exc: BaseException, message: str, *args: object
) -> None:
    """Log `exc`, a failure of Redis met while doing what `message` says (%-style, with `args`
    and then `exc` for its last `%s`).

    A refusal (`redis_refusal`) is one ERROR line on `callbridge.redis` naming it, at most once
    every `REPEAT_S` in this process whoever meets it (and `message` at DEBUG); any other
    failure is a WARNING `message` on `logger`, at most once every `REPEAT_S` for that logger
    and message (at DEBUG in between).
    """
    reason = redis_refusal(exc)
    if reason is None:
        due = _outages.due(f"{logger.name} {message}", time.monotonic())
        logger.log(logging.WARNING if due else logging.DEBUG, message, *args, exc)
        return
    logger.debug(message, *args, exc)
    if _refusals.due(reason, time.monotonic()):
        _log.error(
            "%s: nothing that needs Redis works until it is put right; retrying meanwhile "
            "(said again every %.0f s while it lasts)",
            reason,
            REPEAT_S,
        )


def redis_trouble(exc: BaseException) -> str:
    """What a request that needed Redis is told about `exc`: the refusal (`redis_refusal`), or
    that Redis is unreachable."""
    return redis_refusal(exc) or f"redis is unreachable: {exc}"
