"""The README's settings table, generated from the `Settings` object (the one source of truth).

`python scripts/settings_table.py` prints it; `--write` replaces it in README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import AliasChoices

from service.settings import Settings


def rows() -> list[str]:
    """One markdown row per setting."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = (
            [str(a) for a in alias.choices]
            if isinstance(alias, AliasChoices)
            else [f"CALLBRIDGE_{name.upper()}"]
        )
        default = "(none)" if field.default is None else f"`{field.default}`"
        env = " / ".join(f"`{n}`" for n in names)
        lines.append(f"| {env} | {default} | {field.description or ''} |")
    return lines


START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def write_readme(readme: Path) -> None:
    """Replace the table between the markers in `readme`."""
    text = readme.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{START}\n" + "\n".join(rows()) + f"\n{END}{tail}")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_readme(Path(__file__).parents[1] / "README.md")
    else:
        print("\n".join(rows()))
