"""Offline speech recognition with pocketsphinx: a phrase grammar first, the general model next.

pocketsphinx's general English model does poorly on synthesized speech, while decoding against
a grammar of expected phrases is exact and takes tens of milliseconds. A grammar search only
ever answers with one of its phrases, so it is trusted only when it completes one; otherwise
(out-of-grammar speech) the general model transcribes the utterance as best it can.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pocketsphinx import Decoder

from media.speech.grammar import phrase_grammar, unique_phrases

SAMPLE_RATE = 16_000
"""The acoustic model's rate: utterances are PCM16 mono at 16 kHz."""

_GRAMMAR_SEARCH = "phrases"
# Dither noise is pseudo-random; a fixed seed makes a decoder's transcripts reproducible.
_DITHER_SEED = 1


@dataclass(frozen=True)
class Recognition:
    """A transcript, which search produced it, and how long decoding took."""

    text: str
    source: Literal["grammar", "general"]
    seconds: float


class PhraseRecognizer:
    """One pocketsphinx decoder with a phrase-grammar search and the general language model.

    Not thread-safe (pocketsphinx decoders are not): use one per thread or process. Phrases with
    a word missing from the pronunciation dictionary cannot be decoded; they are left out and
    listed in `unknown_phrases`.
    """

    def __init__(self, phrases: Iterable[str], *, dither: bool = True) -> None:
        """Load the acoustic and language models and compile `phrases` into a grammar.

        `dither` adds a little noise to the audio: digital silence (exact zeros, which
        resampled synthetic speech has) otherwise gives frames of minus-infinite energy and
        cuts transcripts short.
        """
        # bestpath=False: the lattice pass after the search drops the grammar's whole-phrase
        # path for a partial one on some utterances; the search's own best path does not.
        self._decoder = Decoder(
            samprate=SAMPLE_RATE,
            dither=dither,
            seed=_DITHER_SEED,
            bestpath=False,
            loglevel="FATAL",
        )
        candidates = unique_phrases(phrases)
        self.phrases = tuple(p for p in candidates if self._pronounceable(p))
        self.unknown_phrases = tuple(p for p in candidates if p not in self.phrases)
        if self.phrases:
            self._decoder.add_jsgf_string(_GRAMMAR_SEARCH, phrase_grammar(self.phrases))
        self._phrase_set = frozenset(self.phrases)

    def transcribe(self, pcm: bytes) -> Recognition:
        """The words of one utterance (PCM16 mono, 16 kHz): a grammar phrase if one matches."""
        started = time.perf_counter()
        if self._phrase_set:
            text = self._decode(pcm, _GRAMMAR_SEARCH)
            if text in self._phrase_set:
                return Recognition(text, "grammar", time.perf_counter() - started)
        return Recognition(self._decode(pcm, None), "general", time.perf_counter() - started)

    def transcribe_general(self, pcm: bytes) -> Recognition:
        """The general language model's transcript alone, without trying the grammar."""
        started = time.perf_counter()
        return Recognition(self._decode(pcm, None), "general", time.perf_counter() - started)

    def _decode(self, pcm: bytes, search: str | None) -> str:
        # `None` selects the decoder's default search: the general language model.
        self._decoder.activate_search(search)
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return "" if hypothesis is None else str(hypothesis.hypstr)

    def _pronounceable(self, phrase: str) -> bool:
        return all(self._decoder.lookup_word(word) is not None for word in phrase.split())
