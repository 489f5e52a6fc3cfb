from pathlib import Path

from scripts.settings_table import rows


def test_readme_lists_every_setting_exactly_as_the_settings_object_defines_it() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [row for row in rows() if row not in readme]
    assert missing == []
