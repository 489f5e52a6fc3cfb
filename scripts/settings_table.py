"""Print the README's settings table from the `Settings` object (the one source of truth)."""

from __future__ import annotations

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


if __name__ == "__main__":
    print("\n".join(rows()))
