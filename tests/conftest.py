"""Fixtures for every suite: the spoken test utterances, synthesized when the tests run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from media.speech.synthesis import synthesizer_available
from scripts.make_test_utterances import TEST_UTTERANCES, write_test_utterance


def require_espeak() -> None:
    """Skip the test without espeak-ng, or fail it under CI, where it is installed."""
    if synthesizer_available():
        return
    reason = "espeak-ng is missing; run scripts/ensure_system_packages.sh"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (CI=true: speech tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def utterance_wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every test utterance as a 48 kHz WAV file (0.5 s before, 1 s after), by name."""
    require_espeak()
    directory = tmp_path_factory.mktemp("utterances")
    return {name: write_test_utterance(directory, name) for name in TEST_UTTERANCES}
