"""Bounded decoding of real recordings: a file (or its bytes) -> 16 kHz mono float32 on the 16-bit grid.

The header is read first, so a 6-hour file or an 8-channel one is refused before a sample is decoded;
the rest is read in blocks (soundfile; PyAV for what libsndfile cannot open: M4A, Opus in some
containers, broken MP3s it still rejects), mixed to mono and resampled with one streaming soxr
resampler, so memory is the output plus one block. Every failure is a :class:`DecodeError` with a
short machine-readable ``reason`` and the decoder's own message.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from dataengine.audio.pcm import quantize_pcm16
from dataengine.sample import AUDIO_SAMPLE_RATE

BLOCK_S = 10.0
"""Seconds decoded at a time."""

DECODE_REASONS: tuple[str, ...] = (
    "missing_file",
    "unreadable",
    "empty_audio",
    "nan_audio",
    "file_too_long",
    "too_many_channels",
)


class DecodeError(ValueError):
    """A recording that cannot be used: ``reason`` (one of :data:`DECODE_REASONS`) and a one-line message."""

    def __init__(self, reason: str, message: str, value: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.value = value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _Mono16k:
    """Collects decoded blocks (frames x channels, any rate) as 16 kHz mono; checks NaN and length."""

    def __init__(self, rate: int, max_s: float) -> None:
        self.rate = rate
        self.max_samples = int(max_s * AUDIO_SAMPLE_RATE) + AUDIO_SAMPLE_RATE
        self.stream = (
            None
            if rate == AUDIO_SAMPLE_RATE
            else soxr.ResampleStream(rate, AUDIO_SAMPLE_RATE, 1, "float32", "HQ")
        )
        self.parts: list[np.ndarray] = []
        self.samples = 0

    def add(self, block: np.ndarray, last: bool = False) -> None:
        mono = np.ascontiguousarray(block.mean(axis=1) if block.ndim == 2 else block, dtype=np.float32)
        if not np.isfinite(mono).all():
            raise DecodeError("nan_audio", "audio holds NaN or infinite samples")
        out = mono if self.stream is None else self.stream.resample_chunk(mono, last=last)
        self.parts.append(np.asarray(out, np.float32))
        self.samples += len(out)
        if self.samples > self.max_samples:  # the header understated the length
            raise DecodeError(
                "file_too_long", f"decodes to more than {self.max_samples / AUDIO_SAMPLE_RATE:.0f} s"
            )

    def result(self) -> np.ndarray:
        if self.stream is not None:
            self.add(np.zeros(0, np.float32), last=True)
        audio = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
        if len(audio) == 0:
            raise DecodeError("empty_audio", "no audio samples")
        return quantize_pcm16(np.clip(audio, -1.0, 1.0))


def _check_header(rate: int, channels: int, seconds: float | None, max_s: float, max_channels: int) -> None:
    if rate <= 0:
        raise DecodeError("unreadable", f"sample rate {rate}")
    if channels > max_channels:
        raise DecodeError(
            "too_many_channels", f"{channels} channels at {rate} Hz (max_channels {max_channels})", channels
        )
    if seconds is not None and seconds > max_s:
        raise DecodeError("file_too_long", f"{seconds:.0f} s by its header (max_file_s {max_s:g})", seconds)


def _soundfile(
    source: Path | bytes, max_s: float, max_channels: int, start_s: float, duration_s: float | None
) -> np.ndarray:
    with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as f:
        rate, channels = int(f.samplerate), int(f.channels)
        total = f.frames / rate if f.frames and f.frames > 0 else None
        first = int(round(start_s * rate))
        count = None if duration_s is None else int(round(duration_s * rate))
        seconds = duration_s if duration_s is not None else (None if total is None else total - start_s)
        _check_header(rate, channels, seconds, max_s, max_channels)
        if first:
            f.seek(first)
        out = _Mono16k(rate, max_s)
        left = count
        block = int(BLOCK_S * rate)
        while left is None or left > 0:
            want = block if left is None else min(block, left)
            data = f.read(want, dtype="float32", always_2d=True)
            if len(data) == 0:
                break
            out.add(data)
            if left is not None:
                left -= len(data)
        return out.result()


def _pyav_frames(container, stream) -> Iterator[np.ndarray]:  # noqa: ANN001 - av types
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            yield out.to_ndarray().reshape(-1)


def _pyav(
    source: Path | bytes, max_s: float, max_channels: int, start_s: float, duration_s: float | None
) -> np.ndarray:
    import av

    with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as container:
        if not container.streams.audio:
            raise DecodeError("unreadable", "no audio stream")
        stream = container.streams.audio[0]
        rate, channels = int(stream.rate or 0), int(stream.channels or 0)
        seconds = duration_s
        if seconds is None and container.duration:
            seconds = container.duration / 1_000_000 - start_s
        _check_header(rate, channels, seconds, max_s, max_channels)
        out = _Mono16k(rate, max_s if duration_s is None else duration_s + 1)
        skip = int(round(start_s * rate))
        left = None if duration_s is None else int(round(duration_s * rate))
        for chunk in _pyav_frames(container, stream):
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            if left is not None:
                chunk = chunk[:left]
                left -= len(chunk)
            if len(chunk):
                out.add(chunk)
            if left == 0:
                break
        return out.result()


def decode_recording(
    source: Path | bytes,
    *,
    max_s: float,
    max_channels: int,
    start_s: float = 0.0,
    duration_s: float | None = None,
) -> np.ndarray:
    """The recording (or its ``start_s`` + ``duration_s`` slice) as 16 kHz mono float32 on the 16-bit grid.

    Raises :class:`DecodeError`: missing file, a file neither decoder reads, no samples, NaN samples, a
    header longer than ``max_s`` or with more than ``max_channels`` channels."""
    _check_file(source)
    try:
        return _soundfile(source, max_s, max_channels, start_s, duration_s)
    except DecodeError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as first:
        try:
            return _pyav(source, max_s, max_channels, start_s, duration_s)
        except DecodeError:
            raise
        except Exception as second:  # noqa: BLE001 - any decoder failure: the file is unreadable
            message = f"soundfile: {_first_line(first)}; pyav: {_first_line(second)}"
            raise DecodeError("unreadable", f"cannot decode audio ({message})") from None


def _check_file(source: Path | bytes) -> None:
    if isinstance(source, Path):
        if not source.is_file():
            raise DecodeError(
                "missing_file", "is a folder, not an audio file" if source.is_dir() else "no such file"
            )
        if source.stat().st_size == 0:
            raise DecodeError("empty_audio", "file is empty (0 bytes)")
    elif not source:
        raise DecodeError("empty_audio", "no audio bytes")


def probe_seconds(
    source: Path | bytes, start_s: float = 0.0, duration_s: float | None = None
) -> float | None:
    """How long the recording (or its ``start_s`` + ``duration_s`` slice) lasts by its header, without
    decoding a sample (well under a millisecond for WAV/FLAC/MP3 through soundfile; PyAV for the rest);
    None when the header does not say. Raises :class:`DecodeError` when neither decoder opens it."""
    if duration_s is not None:
        return duration_s
    _check_file(source)
    try:
        with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as f:
            if f.samplerate > 0 and f.frames and f.frames > 0:
                return f.frames / f.samplerate - start_s
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as first:
        try:
            import av

            with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as container:
                if not container.streams.audio:
                    raise DecodeError("unreadable", "no audio stream") from None
                return container.duration / 1_000_000 - start_s if container.duration else None
        except DecodeError:
            raise
        except Exception as second:  # noqa: BLE001 - any decoder failure: the file is unreadable
            message = f"soundfile: {_first_line(first)}; pyav: {_first_line(second)}"
            raise DecodeError("unreadable", f"cannot decode audio ({message})") from None
    return None
