"""The declared lower bounds of dependencies are versions that have what our code calls."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _floor(name: str) -> tuple[int, ...]:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for requirement in dependencies:
        match = re.fullmatch(rf"{re.escape(name)}(?:\[[^\]]*\])?>=([0-9.]+),.*", requirement)
        if match:
            return tuple(int(part) for part in match[1].split("."))
    raise AssertionError(f"{name} has no '>=' floor in pyproject.toml")


def test_websockets_floor_has_proxy_lookup_and_sends_bytes_as_text() -> None:
    # signaling/realtime/sideband.py imports `websockets.uri.get_proxy` (15.0) and sends its
    # JSON bytes with `send(..., text=True)` (14.0); under 15, the sideband cannot be imported.
    assert _floor("websockets") >= (15,)
