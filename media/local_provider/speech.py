"""The local provider's ears and mouth: offline recognition and synthesis, when installed.

Both are optional at run time. Without pocketsphinx the provider hears text only (typed messages
and the `user_spoke` hook); without espeak-ng each reply is a tone beside its text events. Either
lack is logged once, when the provider starts.
"""

from __future__ import annotations

import asyncio
import importlib
import logging

from media.audio import SAMPLE_RATE
from media.local_provider.config import LocalProviderConfig
from media.speech.recognizer_pool import RecognizerPool
from media.speech.synthesis import synthesize, synthesizer_available

log = logging.getLogger("callbridge.provider.speech")


class ProviderSpeech:
    """What one provider instance can hear and say, shared by its calls."""

    def __init__(self, config: LocalProviderConfig) -> None:
        """Find out what is installed, warning once for each piece that is not."""
        self._config = config
        self.recognizers: RecognizerPool | None = None
        self.can_speak = False
        if not config.media:
            # Without media there is no audio to hear or to speak into.
            return
        if not _recognizer_installed():
            log.warning(
                "pocketsphinx is not installed: the local provider does not transcribe callers' "
                "audio; it hears typed text only"
            )
        else:
            self.recognizers = RecognizerPool(config.asr_phrases, config.asr_processes)
        self.can_speak = synthesizer_available(config.tts_command)
        if not self.can_speak:
            log.warning(
                "%s not found: the local provider answers with a tone and text, not speech",
                config.tts_command,
            )

    async def speech_for(self, text: str) -> bytes:
        """`text` spoken, as PCM16 mono at the outbound track's 48 kHz.

        Raises SynthesisError when espeak-ng fails.
        """
        # espeak-ng runs as a subprocess; waiting for it must not hold up the event loop.
        return await asyncio.to_thread(
            synthesize,
            text,
            rate=SAMPLE_RATE,
            command=self._config.tts_command,
            voice=self._config.tts_voice,
        )

    def close(self) -> None:
        """Stop the recognizer workers."""
        if self.recognizers is not None:
            self.recognizers.close()


def _recognizer_installed() -> bool:
    try:
        importlib.import_module("pocketsphinx")
    except ImportError:
        return False
    return True
