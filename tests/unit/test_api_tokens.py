"""The API tokens, split from `CALLBRIDGE_API_TOKENS` once and again whenever the setting is
replaced."""

from __future__ import annotations

from pydantic import SecretStr

from service.settings import Settings


def test_the_tokens_are_the_settings_comma_separated_values_without_blanks() -> None:
    settings = Settings(api_tokens=SecretStr(" tok-a, ,tok-b,"))
    assert settings.api_token_list() == ("tok-a", "tok-b")


def test_no_setting_means_no_tokens() -> None:
    assert Settings().api_token_list() == ()


def test_a_copy_with_other_tokens_has_those_tokens() -> None:
    settings = Settings(api_tokens=SecretStr("tok-a"))
    assert settings.api_token_list() == ("tok-a",)
    copy = settings.model_copy(update={"api_tokens": SecretStr("tok-new")})
    assert copy.api_token_list() == ("tok-new",)


def test_tokens_set_anew_replace_the_old_ones() -> None:
    settings = Settings(api_tokens=SecretStr("tok-a"))
    assert settings.api_token_list() == ("tok-a",)
    settings.api_tokens = SecretStr("rotated")
    assert settings.api_token_list() == ("rotated",)
