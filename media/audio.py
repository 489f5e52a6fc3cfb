"""Audio frames for the WebRTC side (48 kHz mono PCM16, 20 ms) and conversions to plain PCM."""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48_000
FRAME_MS = 20
FRAME_SECONDS = FRAME_MS / 1000
SAMPLES_PER_FRAME = SAMPLE_RATE * FRAME_MS // 1000
TIME_BASE = Fraction(1, SAMPLE_RATE)

_FULL_SCALE = 32768.0


def samples_frame(samples: npt.NDArray[np.int16], pts: int) -> av.AudioFrame:
    """A 48 kHz mono PCM16 frame holding `samples`, starting at sample `pts`."""
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


def silence_frame(pts: int) -> av.AudioFrame:
    """One 20 ms frame of digital silence starting at sample `pts`."""
    return samples_frame(np.zeros(SAMPLES_PER_FRAME, dtype=np.int16), pts)


def tone_frame(freq_hz: float, pts: int, amplitude: float = 0.3) -> av.AudioFrame:
    """One 20 ms frame of a sine at `freq_hz`, `amplitude` a fraction of full scale.

    The phase is taken from `pts` (a sample index), so frames with consecutive pts join up
    without clicks.
    """
    t = (pts + np.arange(SAMPLES_PER_FRAME)) / SAMPLE_RATE
    sine = amplitude * (_FULL_SCALE - 1) * np.sin(2 * math.pi * freq_hz * t)
    return samples_frame(np.round(sine).astype(np.int16), pts)


def tone_frames(freq_hz: float, amplitude: float = 0.3) -> Iterator[av.AudioFrame]:
    """An endless, phase-continuous run of tone frames."""
    pts = 0
    while True:
        yield tone_frame(freq_hz, pts, amplitude)
        pts += SAMPLES_PER_FRAME


def silence_frames() -> Iterator[av.AudioFrame]:
    """An endless run of silent frames."""
    pts = 0
    while True:
        yield silence_frame(pts)
        pts += SAMPLES_PER_FRAME


class Pcm16Converter:
    """Turns `av.AudioFrame`s of any layout, format and rate into PCM16 mono bytes at `rate`.

    One converter per stream: the resampler keeps filter state between frames, so a fresh one
    per frame would click at every frame boundary.
    """

    def __init__(self, rate: int) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def convert(self, frame: av.AudioFrame) -> bytes:
        """The PCM16 little-endian samples the resampler has ready after taking `frame`."""
        return b"".join(out.to_ndarray().tobytes() for out in self._resampler.resample(frame))

    def flush(self) -> bytes:
        """The samples still held in the resampler at the end of the stream."""
        return b"".join(out.to_ndarray().tobytes() for out in self._resampler.resample(None))


def rms_dbfs(pcm: bytes) -> float:
    """RMS level of PCM16 little-endian mono samples in dBFS; `-inf` for silence or no data."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples))))
    if rms == 0.0:
        return -math.inf
    return 20 * math.log10(rms / _FULL_SCALE)


def read_pcm16(source: Path | bytes, rate: int) -> bytes:
    """Decode an audio file (WAV or anything FFmpeg reads), or its bytes, to PCM16 mono at `rate`.

    Raises av.FFmpegError when the data is not audio FFmpeg can decode.
    """
    converter = Pcm16Converter(rate)
    chunks: list[bytes] = []
    file = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with av.open(file, mode="r") as container:
        for frame in container.decode(audio=0):
            chunks.append(converter.convert(frame))
    chunks.append(converter.flush())
    return b"".join(chunks)


def write_wav(path: Path, pcm: bytes, rate: int) -> Path:
    """Write PCM16 little-endian mono samples at `rate` as a WAV file; returns `path`."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def read_wav_frames(path: Path) -> list[av.AudioFrame]:
    """Decode an audio file (WAV or anything FFmpeg reads) into 20 ms 48 kHz mono frames.

    The last frame is padded with silence to a whole frame.
    """
    samples = np.frombuffer(read_pcm16(path, SAMPLE_RATE), dtype="<i2").astype(np.int16)
    padding = -samples.size % SAMPLES_PER_FRAME
    samples = np.concatenate([samples, np.zeros(padding, dtype=np.int16)])
    return [
        samples_frame(samples[start : start + SAMPLES_PER_FRAME], start)
        for start in range(0, samples.size, SAMPLES_PER_FRAME)
    ]
