"""Phrase grammars for the recognizer: phrase normalisation and the JSGF text (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[a-z0-9']+")


def normalize_phrase(text: str) -> str:
    """`text` as the recognizer writes it: lower-case words, no punctuation, single spaces."""
    return " ".join(_WORD.findall(text.casefold()))


def unique_phrases(phrases: Iterable[str]) -> tuple[str, ...]:
    """The distinct non-empty normalised phrases, in first-seen order."""
    return tuple(dict.fromkeys(p for p in map(normalize_phrase, phrases) if p))


def phrase_grammar(phrases: Iterable[str]) -> str:
    """A JSGF grammar whose sentences are exactly the (normalised) `phrases`.

    Raises ValueError when no phrase has any words: JSGF has no empty grammar.
    """
    sentences = unique_phrases(phrases)
    if not sentences:
        raise ValueError("a phrase grammar needs at least one phrase with words")
    alternatives = "\n    | ".join(f"( {sentence} )" for sentence in sentences)
    return f"#JSGF V1.0;\ngrammar phrases;\npublic <phrase> =\n      {alternatives};\n"
