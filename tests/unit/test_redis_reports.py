"""How often a refusal by Redis, or an outage, is reported, and how a failure is told apart
from an outage."""

from __future__ import annotations

import logging

import pytest
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    NoPermissionError,
    ResponseError,
)

from service.redis_client import CREDENTIALS_REFUSED, redis_refusal
from service.redis_reports import RepeatedReports, log_redis_failure

REASON = "Redis refuses the credentials"


def test_a_refusal_is_reported_the_first_time() -> None:
    assert RepeatedReports(60.0).due(REASON, now=100.0)


def test_a_refusal_is_not_reported_again_within_the_repeat() -> None:
    reports = RepeatedReports(60.0)
    reports.due(REASON, now=100.0)
    assert not reports.due(REASON, now=159.9)


def test_a_refusal_is_reported_again_once_the_repeat_has_passed() -> None:
    reports = RepeatedReports(60.0)
    reports.due(REASON, now=100.0)
    assert reports.due(REASON, now=160.0)


def test_each_refusal_has_its_own_repeat() -> None:
    reports = RepeatedReports(60.0)
    reports.due(REASON, now=100.0)
    assert reports.due("another refusal", now=101.0)


def test_noauth_and_wrongpass_are_a_refusal_of_the_credentials() -> None:
    assert redis_refusal(AuthenticationError("invalid password")) == CREDENTIALS_REFUSED


def test_noperm_names_the_command_refused() -> None:
    refusal = redis_refusal(
        NoPermissionError("User default has no permissions to run the 'xadd' command")
    )
    assert refusal is not None
    assert "'xadd'" in refusal


def test_a_refusal_wrapped_by_a_library_is_still_one() -> None:
    wrapped = RuntimeError("storage failed")
    wrapped.__cause__ = AuthenticationError("invalid password")
    assert redis_refusal(wrapped) == CREDENTIALS_REFUSED


def test_an_outage_or_a_refused_command_is_no_refusal() -> None:
    assert redis_refusal(ConnectionError("Connection refused")) is None
    assert redis_refusal(ResponseError("WRONGTYPE")) is None


def test_an_outage_line_is_a_warning_once_then_debug_while_it_repeats(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("callbridge.test.outage-once")
    caplog.set_level(logging.DEBUG, logger=logger.name)
    for _ in range(3):
        log_redis_failure(logger, ConnectionError("refused"), "events waiting: %s")
    assert [r.levelname for r in caplog.records] == ["WARNING", "DEBUG", "DEBUG"]


def test_each_outage_line_has_its_own_repeat(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("callbridge.test.outage-each")
    caplog.set_level(logging.DEBUG, logger=logger.name)
    log_redis_failure(logger, ConnectionError("refused"), "leases waiting: %s")
    log_redis_failure(logger, ConnectionError("refused"), "handoffs waiting: %s")
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
