"""The spoken test utterances, synthesized with espeak-ng into WAV files when tests run.

No audio is committed: `tests/conftest.py` calls `write_test_utterance` into a temporary
directory. By hand: `python scripts/make_test_utterances.py OUT_DIR [--rate 16000] [--lead 2]`.
Each file is mono PCM16 with leading silence (a caller's microphone opens before anyone speaks)
and a second of trailing silence, so that a voice-activity detector hears the speech end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from media.audio import SAMPLE_RATE, write_wav
from media.speech.synthesis import synthesize

TEST_UTTERANCES: dict[str, str] = {
    "request": "please ask the background agent what is two plus three",
    "greeting": "hello can you hear me",
    "time": "what time is it",
}
"""Every test utterance by name; all are in the local provider's default phrase grammar."""

LEAD_SECONDS = 0.5
TRAIL_SECONDS = 1.0


def utterance_pcm(
    text: str, *, rate: int, lead_s: float = LEAD_SECONDS, trail_s: float = TRAIL_SECONDS
) -> bytes:
    """`text` spoken by espeak-ng between silences, as PCM16 mono at `rate`.

    Raises SynthesisError when espeak-ng is missing or fails.
    """
    lead = bytes(2 * round(lead_s * rate))
    trail = bytes(2 * round(trail_s * rate))
    return lead + synthesize(text, rate=rate) + trail


def write_test_utterance(
    directory: Path, name: str, *, rate: int = SAMPLE_RATE, lead_s: float = LEAD_SECONDS
) -> Path:
    """Write the test utterance `name` as a WAV file in `directory` and return its path."""
    path = directory / f"{name}-{rate}hz-{lead_s:g}s.wav"
    pcm = utterance_pcm(TEST_UTTERANCES[name], rate=rate, lead_s=lead_s)
    return write_wav(path, pcm, rate)


def main(argv: list[str] | None = None) -> int:
    """Write every test utterance into the directory named on the command line."""
    parser = argparse.ArgumentParser(description="Synthesize the spoken test utterances.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--rate", type=int, default=SAMPLE_RATE, choices=(16_000, 48_000))
    parser.add_argument("--lead", type=float, default=LEAD_SECONDS, help="leading silence, s")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in TEST_UTTERANCES:
        print(write_test_utterance(args.out_dir, name, rate=args.rate, lead_s=args.lead))
    return 0


if __name__ == "__main__":
    sys.exit(main())
