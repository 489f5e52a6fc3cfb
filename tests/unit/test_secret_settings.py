"""One rule for every setting holding a secret: `VAR=` (as docker-compose and .env files write
it) and a blank value mean unset, and surrounding whitespace is not part of the secret, so no
empty or blank string is ever used as a key, token or password."""

from __future__ import annotations

import os

import pytest

from service.settings import Settings

# Each secret setting, with the settings it needs beside it to be valid once it is set.
SECRET_SETTINGS = {
    "API_KEY": {},
    "API_TOKENS": {},
    "OPS_TOKEN": {},
    "CALL_TOKEN_SECRET": {"API_TOKENS": "api-token-of-the-secret-tests"},
    "WEBHOOK_SECRET": {},
    "TURN_SHARED_SECRET": {"ICE_SERVERS": "turn:turn.example.net"},
    "TURN_PASSWORD": {"ICE_SERVERS": "turn:turn.example.net", "TURN_USERNAME": "relay-user"},
}


def _from_environment(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Settings:
    """The settings `serve` would read from an environment holding only `variables`
    (`CALLBRIDGE_` + each name)."""
    for name in list(os.environ):
        if name.startswith("CALLBRIDGE_") or name == "OPENAI_API_KEY":
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(f"CALLBRIDGE_{name}", value)
    return Settings()


def _secret(settings: Settings, name: str) -> str | None:
    value = getattr(settings, name.lower())
    return None if value is None else str(value.get_secret_value())


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_an_empty_secret_setting_is_unset(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    settings = _from_environment(monkeypatch, **{name: ""})
    assert _secret(settings, name) is None


@pytest.mark.parametrize("blank", [" ", "\t \n"], ids=["space", "tab-space-newline"])
@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_a_blank_secret_setting_is_unset(
    monkeypatch: pytest.MonkeyPatch, name: str, blank: str
) -> None:
    settings = _from_environment(monkeypatch, **{name: blank})
    assert _secret(settings, name) is None


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_surrounding_whitespace_is_no_part_of_a_secret(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    value = " whsec_c2VjcmV0LW9mLXRoZS1zZWNyZXQtdGVzdHM=\n"
    settings = _from_environment(monkeypatch, **SECRET_SETTINGS[name], **{name: value})
    assert _secret(settings, name) == value.strip()
