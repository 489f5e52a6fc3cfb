"""Offline speech recognition with pocketsphinx: a phrase grammar first, the general model next.

pocketsphinx's general English model does poorly on synthesized speech, while decoding against
a grammar of expected phrases is exact and takes tens of milliseconds. But a grammar search
only ever answers with one of its phrases, and forces other speech onto the nearest one ("the
quick brown fox jumps over the lazy dog" comes out as "what time is it", most of it aligned to
silence). So a grammar answer is trusted only when it is a whole phrase whose words cover the
utterance's loud frames; otherwise the general model transcribes it as best it can. Speech that
differs from a phrase in a word or two ("what is four times six") still passes for that phrase.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pocketsphinx import Decoder

from media.speech.grammar import phrase_grammar, unique_phrases

SAMPLE_RATE = 16_000
"""The acoustic model's rate: utterances are PCM16 mono at 16 kHz."""

_GRAMMAR_SEARCH = "phrases"
_FRAME_SAMPLES = SAMPLE_RATE // 100
"""pocketsphinx's frames advance 10 ms."""
# A frame is loud when it is within this many dB of the utterance's loudest frame, and above the
# floor: the frames the phrase's words must account for.
_LOUD_RANGE_DB = 30.0
_LOUD_FLOOR_DBFS = -50.0
MAX_UNEXPLAINED_SHARE = 0.25
"""Measured on espeak-ng voices: in-grammar phrases leave at most 0.21 of their loud frames to
silence and fillers (mostly under 0.05); speech forced onto a shorter phrase leaves 0.25-0.75."""
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

    def __init__(
        self,
        phrases: Iterable[str],
        *,
        dither: bool = True,
        max_unexplained_share: float = MAX_UNEXPLAINED_SHARE,
    ) -> None:
        """Load the acoustic and language models and compile `phrases` into a grammar.

        A grammar answer is rejected (for the general model's) when its words leave more than
        `max_unexplained_share` of the utterance's loud frames to silence or fillers.

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
        self._max_unexplained_share = max_unexplained_share

    def transcribe(self, pcm: bytes) -> Recognition:
        """The words of one utterance (PCM16 mono, 16 kHz): a grammar phrase if one matches."""
        started = time.perf_counter()
        if self._phrase_set:
            text = self._decode(pcm, _GRAMMAR_SEARCH)
            if text in self._phrase_set and (
                self._unexplained_share(pcm) <= self._max_unexplained_share
            ):
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

    def _unexplained_share(self, pcm: bytes) -> float:
        """The share of loud frames that the last decode's words do not cover."""
        loud = _loud_frames(pcm)
        covered = np.zeros(loud.size, dtype=bool)
        for segment in self._decoder.seg():
            # Silence, fillers and the null transitions: <sil>, [NOISE], (NULL), <s>, </s>.
            if not segment.word.startswith(("<", "[", "(")):
                covered[segment.start_frame : segment.end_frame + 1] = True
        unexplained = int(np.count_nonzero(loud & ~covered))
        return unexplained / max(1, int(np.count_nonzero(loud)))

    def _pronounceable(self, phrase: str) -> bool:
        return all(self._decoder.lookup_word(word) is not None for word in phrase.split())


def _loud_frames(pcm: bytes) -> npt.NDArray[np.bool_]:
    """Per 10 ms frame of PCM16 `pcm`: whether it is loud (see `_LOUD_RANGE_DB`)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    count = samples.size // _FRAME_SAMPLES
    if count == 0:
        return np.zeros(0, dtype=bool)
    frames = samples[: count * _FRAME_SAMPLES].reshape(count, _FRAME_SAMPLES)
    rms = np.sqrt(np.mean(np.square(frames), axis=1))
    level = 20 * np.log10(np.maximum(rms, 1.0) / 32768.0)
    return np.asarray(level >= max(level.max() - _LOUD_RANGE_DB, _LOUD_FLOOR_DBFS))
