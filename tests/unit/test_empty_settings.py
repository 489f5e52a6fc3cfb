"""`CALLBRIDGE_X=` (as a .env template or a compose file's `${VAR:-}` writes it) is the same as
leaving `CALLBRIDGE_X` unset, for every setting: never a refusal to start, never another value."""

from __future__ import annotations

import os

import pytest
from pydantic import AliasChoices

from service.settings import ENV_PREFIX, Settings


def _variables(name: str) -> list[str]:
    """Every variable `serve` reads setting `name` from."""
    alias = Settings.model_fields[name].validation_alias
    others = alias.choices if isinstance(alias, AliasChoices) else []
    return [ENV_PREFIX + name.upper(), *(c for c in others if isinstance(c, str))]


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable in list(os.environ):
        if variable.startswith(ENV_PREFIX) or variable == "OPENAI_API_KEY":
            monkeypatch.delenv(variable)
    return monkeypatch


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_an_empty_variable_is_the_default(clean_environment: pytest.MonkeyPatch, name: str) -> None:
    default = Settings()
    for variable in _variables(name):
        clean_environment.setenv(variable, "")
    assert getattr(Settings(), name) == getattr(default, name)
