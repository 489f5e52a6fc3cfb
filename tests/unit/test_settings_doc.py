from pathlib import Path

from scripts.settings_table import rows
from service.settings import unknown_variables


def test_readme_lists_every_setting_exactly_as_the_settings_object_defines_it() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [row for row in rows() if row not in readme]
    assert missing == []


def test_a_misspelt_setting_is_named_with_the_one_it_may_mean() -> None:
    assert unknown_variables({"CALLBRIDGE_MAX_CALL": "5"}) == [
        "CALLBRIDGE_MAX_CALL is not a setting and is ignored (did you mean CALLBRIDGE_MAX_CALLS?)"
    ]


def test_settings_and_their_aliases_are_not_reported() -> None:
    environ = {"CALLBRIDGE_MAX_CALLS": "5", "OPENAI_API_KEY": "x", "CALLBRIDGE_API_KEY": "y"}
    assert unknown_variables(environ) == []


def test_a_variable_close_to_no_setting_is_reported_without_a_guess() -> None:
    assert unknown_variables({"CALLBRIDGE_FROBNICATE": "1"}) == [
        "CALLBRIDGE_FROBNICATE is not a setting and is ignored"
    ]
