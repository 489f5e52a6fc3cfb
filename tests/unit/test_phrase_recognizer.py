"""The offline recognizer on synthesized speech: real espeak-ng audio, real pocketsphinx."""

from __future__ import annotations

from pathlib import Path

import pytest

from media.audio import read_pcm16, read_wav_frames
from media.local_provider.config import DEFAULT_ASR_PHRASES
from media.speech.recognizer import SAMPLE_RATE, PhraseRecognizer
from media.speech.utterances import UtteranceSegmenter
from media.speech.vad import UtteranceEnded
from scripts.make_test_utterances import TEST_UTTERANCES, utterance_pcm
from tests.conftest import require_espeak


@pytest.fixture(scope="module")
def recognizer() -> PhraseRecognizer:
    return PhraseRecognizer(DEFAULT_ASR_PHRASES)


def spoken(text: str) -> bytes:
    require_espeak()
    return utterance_pcm(text, rate=SAMPLE_RATE)


@pytest.mark.parametrize("name", sorted(TEST_UTTERANCES))
def test_a_test_utterance_is_transcribed_exactly_by_the_grammar(
    recognizer: PhraseRecognizer, utterance_wavs: dict[str, Path], name: str
) -> None:
    recognition = recognizer.transcribe(read_pcm16(utterance_wavs[name], SAMPLE_RATE))

    assert (recognition.text, recognition.source) == (TEST_UTTERANCES[name], "grammar")


def test_speech_that_no_phrase_covers_goes_to_the_general_model(
    recognizer: PhraseRecognizer,
) -> None:
    # Forced onto the grammar, this comes out as "what time is it", mostly aligned to silence.
    recognition = recognizer.transcribe(spoken("the quick brown fox jumps over the lazy dog"))

    assert recognition.source == "general"
    assert recognition.text != "what time is it"


def test_silence_transcribes_to_nothing(recognizer: PhraseRecognizer) -> None:
    assert recognizer.transcribe(bytes(2 * SAMPLE_RATE)).text == ""


def test_phrases_with_words_outside_the_dictionary_are_left_out() -> None:
    recognizer = PhraseRecognizer(["Hello, can you hear me?", "frobnicate the zorbl", "2 plus 3"])

    assert recognizer.phrases == ("hello can you hear me",)
    assert recognizer.unknown_phrases == ("frobnicate the zorbl", "2 plus 3")


def test_a_played_wav_is_heard_as_one_utterance_with_its_phrase(
    recognizer: PhraseRecognizer, utterance_wavs: dict[str, Path]
) -> None:
    # The live path: 48 kHz frames, as WebRTC delivers them, resampled and cut by the VAD.
    segmenter = UtteranceSegmenter()
    heard = [
        event
        for frame in read_wav_frames(utterance_wavs["greeting"])
        for event in segmenter.hear(frame)
        if isinstance(event, UtteranceEnded)
    ]

    assert [recognizer.transcribe(u.pcm).text for u in heard] == [TEST_UTTERANCES["greeting"]]
