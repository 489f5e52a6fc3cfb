"""Speech recognizers in worker processes, shared by every call of a provider.

pocketsphinx holds the GIL while it decodes (measured: a 1.5 s general-model decode in
`asyncio.to_thread` stalled the event loop for 1.3 s), so a thread would still stop the loop
that paces every call's audio. Worker processes decode in parallel without touching it, and
one recognizer per process also settles the decoder's lack of thread safety.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from media.speech.recognizer import PhraseRecognizer, Recognition

log = logging.getLogger("callbridge.provider.speech")

# The worker process's recognizer, made by `_start_worker`.
_recognizer: PhraseRecognizer | None = None


def _start_worker(phrases: tuple[str, ...]) -> None:
    global _recognizer
    # Imported in the worker only: this module must import without pocketsphinx, so that a
    # provider without it can start (text-only).
    from media.speech.recognizer import PhraseRecognizer

    _recognizer = PhraseRecognizer(phrases)


def _worker_recognizer() -> PhraseRecognizer:
    assert _recognizer is not None, "the pool's initializer makes the recognizer"
    return _recognizer


def _unknown_phrases() -> tuple[str, ...]:
    return _worker_recognizer().unknown_phrases


def _transcribe(pcm: bytes) -> Recognition:
    return _worker_recognizer().transcribe(pcm)


class RecognitionFailed(Exception):
    """A worker process died while transcribing; the pool starts new ones on the next call."""


class RecognizerPool:
    """Up to `processes` worker processes, each with a `PhraseRecognizer` for `phrases`.

    Workers start on demand (each loads the models, about half a second), so a provider that
    never hears speech never starts one.
    """

    def __init__(self, phrases: Sequence[str], processes: int) -> None:
        if processes < 1:
            raise ValueError("a recognizer pool needs at least one process")
        self._phrases = tuple(phrases)
        self._processes = processes
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None

    def warm_up(self) -> None:
        """Start a worker now, so that the first utterance does not wait for one.

        Phrases the recognizer cannot use are logged once, when the first worker is ready.
        """
        if self._executor is not None:
            return
        self._executor_or_new().submit(_unknown_phrases).add_done_callback(_report_unknown)

    async def transcribe(self, pcm: bytes) -> Recognition:
        """The transcript of one utterance (PCM16 mono, 16 kHz).

        Raises RecognitionFailed when the worker process died.
        """
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor_or_new(), _transcribe, pcm)
        except BrokenProcessPool as exc:
            self._executor = None
            raise RecognitionFailed(str(exc)) from exc

    def close(self) -> None:
        """Stop the workers (an utterance being decoded is abandoned)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _executor_or_new(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=self._processes,
                # Spawned, not forked: a fork of a process running an event loop and aiortc's
                # threads can inherit a lock held by a thread that does not exist in the child.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self._phrases,),
            )
        return self._executor


def _report_unknown(future: concurrent.futures.Future[tuple[str, ...]]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    unknown = future.result()
    if unknown:
        log.warning(
            "speech recognition ignores phrases with words missing from its dictionary: %s",
            "; ".join(unknown),
        )
