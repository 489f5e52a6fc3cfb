"""`module:function` names in settings (handlers, SIP routers), resolved to the callable."""

from __future__ import annotations

import importlib
from typing import Any


def load_callable(spec: str, what: str) -> Any:
    """The callable `spec` (`package.module:attribute[.attribute...]`) names.

    `what` names the setting in error messages. Raises ValueError when `spec` is not of that
    form or names something that is not callable; ImportError and AttributeError when the
    module or attribute does not exist.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{what} must be module:function, not {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{what} {spec!r} is not callable")
    return target
