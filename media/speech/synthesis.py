"""Speech synthesis with espeak-ng: text in, PCM16 mono samples out."""

from __future__ import annotations

import shutil
import subprocess

import av

from media.audio import read_pcm16

ESPEAK_COMMAND = "espeak-ng"
DEFAULT_VOICE = "en-us"
"""espeak-ng's American English: pocketsphinx's US English model hears it far better than the
default British voice."""


class SynthesisError(Exception):
    """espeak-ng is missing, failed, took too long, or wrote something that is not audio."""


def synthesizer_available(command: str = ESPEAK_COMMAND) -> bool:
    """Whether `command` (a name on PATH or a path) can be run."""
    return shutil.which(command) is not None


def synthesize(
    text: str,
    *,
    rate: int,
    command: str = ESPEAK_COMMAND,
    voice: str = DEFAULT_VOICE,
    timeout_s: float = 10.0,
) -> bytes:
    """`text` spoken by espeak-ng, as PCM16 mono at `rate`. Blocks: run it in a thread.

    Raises SynthesisError when there is no audio to return.
    """
    try:
        # The text goes in on stdin, never as an argument, so that no text reads as an option.
        done = subprocess.run(
            [command, "-v", voice, "--stdout"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SynthesisError(f"{command} did not run: {exc}") from exc
    if done.returncode != 0 or not done.stdout:
        problem = done.stderr.decode("utf-8", "replace").strip()[:200]
        raise SynthesisError(f"{command} exited with {done.returncode}: {problem or 'no audio'}")
    try:
        return read_pcm16(done.stdout, rate)
    except av.FFmpegError as exc:
        raise SynthesisError(f"{command} wrote audio that cannot be decoded: {exc}") from exc
