"""Phrase grammars for the recognizer: how phrases are normalised and written as JSGF."""

from __future__ import annotations

import pytest

from media.speech.grammar import normalize_phrase, phrase_grammar, unique_phrases


def test_a_phrase_is_normalised_to_lower_case_words_without_punctuation() -> None:
    assert normalize_phrase("  Hello,   can you HEAR me?! ") == "hello can you hear me"


def test_normalising_keeps_apostrophes_and_digits() -> None:
    assert normalize_phrase("What's 2 plus 3?") == "what's 2 plus 3"


def test_unique_phrases_drops_repeats_and_empties_keeping_the_first_order() -> None:
    phrases = ["Yes please", "no thank you", "yes, please!", "?!", "thank you goodbye"]

    assert unique_phrases(phrases) == ("yes please", "no thank you", "thank you goodbye")


def test_the_grammar_has_one_alternative_per_phrase() -> None:
    grammar = phrase_grammar(["what time is it", "Hello, there"])

    assert grammar == (
        "#JSGF V1.0;\n"
        "grammar phrases;\n"
        "public <phrase> =\n"
        "      ( what time is it )\n"
        "    | ( hello there );\n"
    )


def test_a_grammar_without_words_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one phrase"):
        phrase_grammar(["", "..."])
