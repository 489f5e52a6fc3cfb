"""`module:function` names in settings (handlers, SIP routers), resolved to the callable; and
telling what such a callable raised from the task running it being cancelled."""

from __future__ import annotations

import asyncio
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


def cancelled_from_outside(exc: BaseException) -> bool:
    """Whether `exc` is the running task being cancelled (its owner stopping it, a timeout),
    rather than something the user's callable raised itself.

    A callable may raise anything: `SystemExit`, `KeyboardInterrupt`, even `CancelledError` of
    its own. Those are its failure, to be handled like any exception it raises; only a
    cancellation asked for from outside (`Task.cancelling`,
    https://docs.python.org/3/library/asyncio-task.html#asyncio.Task.cancelling) must go on
    stopping the task.
    """
    if not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def described(exc: BaseException) -> str:
    """`exc` as a failure's message quotes it: its class's name, then its text if it has one."""
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
