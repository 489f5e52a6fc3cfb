"""Structured logging: JSON lines (call id and handoff id on every call line), or text on a tty.

A filter removes configured secrets from every record, whoever logged it (httpx and websockets
debug logs included), and cuts its message and traceback to a size: a request target or provider
text of any size makes a log line of bounded size.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final, TextIO

from signaling.realtime import clip
from signaling.redaction import redact

MAX_LOG_MESSAGE_BYTES: Final = 8_192
"""A record's message, in UTF-8 bytes, after redaction; longer ones end with a cut marker
giving their whole size (an access line with a 60 KB request target, say)."""
MAX_LOG_TRACEBACK_BYTES: Final = 32_768
"""A record's traceback (exception messages included), cut the same way."""

_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
# Chatty at INFO about every ICE check and HTTP request; their warnings still show.
_QUIET = ("aioice", "aiortc", "httpx", "httpcore", "websockets")


class RedactSecrets(logging.Filter):
    """Replaces each secret, and anything key-shaped, with `[REDACTED]` in the message,
    arguments and traceback (`signaling.redaction.redact`), then cuts the message to
    `MAX_LOG_MESSAGE_BYTES` and the traceback to `MAX_LOG_TRACEBACK_BYTES`."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def _clean(self, text: str) -> str:
        return redact(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = clip(self._clean(record.getMessage()), MAX_LOG_MESSAGE_BYTES)
        record.args = None
        if record.exc_info:
            traceback = logging.Formatter().formatException(record.exc_info)
            record.exc_text = clip(self._clean(traceback), MAX_LOG_TRACEBACK_BYTES)
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            body["exc"] = record.exc_text
        return json.dumps(body, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable, with the call and handoff ids when present."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{k}={getattr(record, k)}" for k in ("call_id", "handoff_id") if hasattr(record, k)]
        return f"{line} [{' '.join(ids)}]" if ids else line


def configure_logging(
    level: str = "INFO",
    fmt: str = "auto",
    secrets: list[str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Install one handler on the root logger (stderr by default), replacing an earlier one."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        JsonFormatter()
        if use_json
        else TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    handler.addFilter(RedactSecrets(secrets or []))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_callbridge", False):
            root.removeHandler(old)
    handler._callbridge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
