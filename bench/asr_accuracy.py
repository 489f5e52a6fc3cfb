"""Offline speech recognition accuracy on synthesized speech: phrase grammar vs general model.

What is measured: utterances are spoken by espeak-ng (the local provider's default phrases,
which include the test utterances, and phrases outside the grammar: near misses and unrelated
speech), padded with silence as a caller's microphone would be, and cut into 20 ms 48 kHz
frames as WebRTC delivers them. Each goes through the local provider's own path, in process
and without WebRTC: resampled to 16 kHz, segmented by the energy VAD, and decoded by
pocketsphinx. Four decoders in the same run:

- grammar: the provider's recognizer, the phrase grammar with the general model as fallback,
  dither on (what the provider does);
- grammar, no dither: the same without dither;
- general: the general language model alone, dither on;
- general, no dither: the general model alone as it comes (the baseline).

Reported per utterance: the transcript, its word accuracy (1 - WER, word-level Levenshtein
against the text spoken; negative when the transcript has many extra words) and decode time;
then per decoder the overall word accuracy for in-grammar and out-of-grammar speech, how many
utterances the grammar answered (for out-of-grammar speech, each of those is a false accept),
and the median decode time. Nothing is asserted.

Run: `.venv/bin/python bench/asr_accuracy.py [--voice en-us --voice en-us+f3]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import av
import numpy as np

from media.audio import SAMPLE_RATE, SAMPLES_PER_FRAME, samples_frame
from media.local_provider.config import DEFAULT_ASR_PHRASES
from media.speech.recognizer import PhraseRecognizer, Recognition
from media.speech.synthesis import synthesize, synthesizer_available
from media.speech.utterances import UtteranceSegmenter
from media.speech.vad import UtteranceEnded

OUT_OF_GRAMMAR = (
    "please ask the background agent what is four times six",
    "hello can you hear me now",
    "can you hear me",
    "what is the weather like today",
    "turn off the lights in the kitchen",
    "the quick brown fox jumps over the lazy dog",
)
LEAD_SECONDS = 0.5
TRAIL_SECONDS = 1.0


@dataclass(frozen=True)
class Decoder:
    """One way of decoding an utterance, by name."""

    name: str
    decode: Callable[[bytes], Recognition]


@dataclass(frozen=True)
class Result:
    """One utterance through one decoder."""

    text: str
    accuracy: float
    errors: int
    seconds: float
    from_grammar: bool


def word_errors(reference: str, hypothesis: str) -> int:
    """Word-level Levenshtein distance: substitutions, deletions and insertions."""
    ref, hyp = reference.split(), hypothesis.split()
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i]
        for j, hyp_word in enumerate(hyp, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1]


def caller_frames(text: str, voice: str) -> list[av.AudioFrame]:
    """`text` spoken between silences, as the 20 ms 48 kHz frames a caller sends."""
    speech = np.frombuffer(synthesize(text, rate=SAMPLE_RATE, voice=voice), dtype="<i2")
    lead = np.zeros(int(LEAD_SECONDS * SAMPLE_RATE), dtype=np.int16)
    trail = np.zeros(int(TRAIL_SECONDS * SAMPLE_RATE) - speech.size % SAMPLES_PER_FRAME)
    samples = np.concatenate([lead, speech, trail.astype(np.int16)])
    return [
        samples_frame(samples[start : start + SAMPLES_PER_FRAME], start)
        for start in range(0, samples.size, SAMPLES_PER_FRAME)
    ]


def utterances(frames: Sequence[av.AudioFrame]) -> list[bytes]:
    """The utterances the provider's VAD cuts from `frames` (16 kHz PCM16 each)."""
    segmenter = UtteranceSegmenter()
    return [
        event.pcm
        for frame in frames
        for event in segmenter.hear(frame)
        if isinstance(event, UtteranceEnded)
    ]


def run(decoder: Decoder, spoken: str, heard: Sequence[bytes]) -> Result:
    """Decode every utterance heard; the transcript is their words in order."""
    recognitions = [decoder.decode(pcm) for pcm in heard]
    text = " ".join(r.text for r in recognitions if r.text)
    errors = word_errors(spoken, text)
    return Result(
        text=text,
        accuracy=1 - errors / len(spoken.split()),
        errors=errors,
        seconds=sum(r.seconds for r in recognitions),
        from_grammar=bool(recognitions) and all(r.source == "grammar" for r in recognitions),
    )


def summary(name: str, results: Sequence[tuple[str, Result]], grammar: bool) -> str:
    """Overall accuracy and median decode time for one decoder over one set of utterances."""
    words = sum(len(spoken.split()) for spoken, _ in results)
    errors = sum(result.errors for _, result in results)
    exact = sum(result.text == spoken for spoken, result in results)
    accepted = sum(result.from_grammar for _, result in results)
    median_ms = statistics.median(result.seconds for _, result in results) * 1000
    line = (
        f"  {name:<20} word accuracy {1 - errors / words:6.1%}  exact {exact:2}/{len(results)}"
        f"  median decode {median_ms:5.0f} ms"
    )
    if grammar:
        line += f"  answered by the grammar {accepted:2}/{len(results)}"
    return line


def main(argv: list[str] | None = None) -> int:
    """Run the comparison for each voice and print it."""
    parser = argparse.ArgumentParser(description="Offline ASR accuracy on synthesized speech.")
    parser.add_argument(
        "--voice", action="append", help="espeak-ng voice (repeatable; default en-us)"
    )
    args = parser.parse_args(argv)
    if not synthesizer_available():
        print("espeak-ng is missing: run scripts/ensure_system_packages.sh", file=sys.stderr)
        return 1
    voices: list[str] = args.voice or ["en-us"]
    with_dither = PhraseRecognizer(DEFAULT_ASR_PHRASES)
    without_dither = PhraseRecognizer(DEFAULT_ASR_PHRASES, dither=False)
    decoders = [
        Decoder("grammar", with_dither.transcribe),
        Decoder("grammar, no dither", without_dither.transcribe),
        Decoder("general", with_dither.transcribe_general),
        Decoder("general, no dither", without_dither.transcribe_general),
    ]
    sets = {"in grammar": with_dither.phrases, "out of grammar": OUT_OF_GRAMMAR}
    print(f"pocketsphinx, {len(with_dither.phrases)} grammar phrases; espeak-ng {voices}")
    for voice in voices:
        results: dict[str, dict[str, list[tuple[str, Result]]]] = {
            d.name: {kind: [] for kind in sets} for d in decoders
        }
        print(f"\nvoice {voice}")
        for kind, phrases in sets.items():
            print(f"\n {kind}")
            for spoken in phrases:
                heard = utterances(caller_frames(spoken, voice))
                print(f"  {spoken!r} ({len(heard)} utterance{'s' * (len(heard) != 1)})")
                for decoder in decoders:
                    result = run(decoder, spoken, heard)
                    results[decoder.name][kind].append((spoken, result))
                    source = "grammar" if result.from_grammar else "general"
                    decode_ms = result.seconds * 1000
                    print(
                        f"    {decoder.name:<20} {result.accuracy:6.1%} {decode_ms:6.0f} ms"
                        f"  [{source}] {result.text!r}"
                    )
        print(f"\nvoice {voice}: overall")
        for kind in sets:
            print(f" {kind}")
            for decoder in decoders:
                grammar = decoder.name.startswith("grammar")
                print(summary(decoder.name, results[decoder.name][kind], grammar))
    return 0


if __name__ == "__main__":
    sys.exit(main())
