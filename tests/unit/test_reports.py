"""The reports `CallReporter` applies are named once as a type and once as classes, alike."""

from __future__ import annotations

from typing import get_args

from service.calls.reporting import REPORTS, Report


def test_the_report_classes_are_the_report_type() -> None:
    assert get_args(Report) == REPORTS
