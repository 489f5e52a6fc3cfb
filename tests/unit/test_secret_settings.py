"""One rule for every setting holding a secret: `VAR=` (as docker-compose and .env files write
it) and a blank value mean unset, and surrounding whitespace is not part of the secret, so no
empty or blank string is ever used as a key, token or password."""

from __future__ import annotations

import os

import pytest
from pydantic import AliasChoices

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


# Each secret setting read from more than one variable, with its variables in the order read.
SEVERAL_NAMES = {
    name: [choice for choice in field.validation_alias.choices if isinstance(choice, str)]
    for name, field in Settings.model_fields.items()
    if name.upper() in SECRET_SETTINGS and isinstance(field.validation_alias, AliasChoices)
}


def _from_environment(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Settings:
    """The settings `serve` would read from an environment holding only `variables`
    (`CALLBRIDGE_` + each name)."""
    return _from_variables(monkeypatch, {f"CALLBRIDGE_{n}": v for n, v in variables.items()})


def _from_variables(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> Settings:
    """The settings `serve` would read from an environment holding only `variables`."""
    for name in list(os.environ):
        if name.startswith("CALLBRIDGE_") or name == "OPENAI_API_KEY":
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
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


def test_openai_api_key_is_read_when_callbridge_api_key_is_absent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _from_variables(monkeypatch, {"OPENAI_API_KEY": "sk-proj-0123456789abcdefghij"})
    assert settings.api_key_value() == "sk-proj-0123456789abcdefghij"


def test_callbridge_api_key_is_read_before_openai_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = "sk-proj-first-01234567", "sk-proj-second-0123"
    settings = _from_variables(monkeypatch, {"CALLBRIDGE_API_KEY": first, "OPENAI_API_KEY": second})
    assert settings.api_key_value() == first


@pytest.mark.parametrize("blank", ["", " ", "\t \n"], ids=["empty", "space", "tab-space-newline"])
@pytest.mark.parametrize(
    ("name", "hidden", "read"),
    [(name, names[0], later) for name, names in SEVERAL_NAMES.items() for later in names[1:]],
)
def test_a_blank_variable_does_not_hide_a_later_name_of_the_same_secret(
    monkeypatch: pytest.MonkeyPatch, name: str, hidden: str, read: str, blank: str
) -> None:
    value = "whsec_c2VjcmV0LW9mLXRoZS1zZWNyZXQtdGVzdHM="
    environment = {f"CALLBRIDGE_{n}": v for n, v in SECRET_SETTINGS[name.upper()].items()}
    settings = _from_variables(monkeypatch, {**environment, hidden: blank, read: value})
    assert _secret(settings, name) == value
