"""Audio I/O: mono float32 conversion, deterministic resampling, file loading and FLAC bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from dataengine.sample import AUDIO_SAMPLE_RATE

_RESAMPLE_QUALITY = "HQ"
_INT16_SCALE = 32768.0


def to_mono_float32(x: np.ndarray) -> np.ndarray:
    """Return ``x`` as a contiguous 1-D float32 array; 2-D input (frames x channels) is averaged.

    Integer input is scaled to [-1, 1) by its dtype's range.
    """
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        arr = arr.astype(np.float64) / max(abs(info.min), info.max)
    if arr.ndim == 2:
        arr = arr.mean(axis=1)
    elif arr.ndim != 1:
        raise ValueError(f"expected 1-D or 2-D (frames, channels) audio, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono audio with soxr (HQ, deterministic); returns float32, a copy even if rates match."""
    audio = to_mono_float32(audio)
    if sr_in == sr_out or len(audio) == 0:
        return audio.copy()
    out = soxr.resample(audio, int(sr_in), int(sr_out), quality=_RESAMPLE_QUALITY)
    return np.ascontiguousarray(out, dtype=np.float32)


def load_audio(path: str | Path, target_sr: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """Read any file soundfile understands as mono float32 at ``target_sr``.

    Raises ValueError naming the file if it is missing or unreadable.
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise ValueError(f"{path}: cannot read audio: {exc}") from None
    return resample(to_mono_float32(data), sr, target_sr)


def encode_flac(audio: np.ndarray, sr: int = AUDIO_SAMPLE_RATE) -> bytes:
    """Encode mono audio as 16-bit PCM FLAC bytes; the same input always gives the same bytes.

    Samples are clipped to [-1, 1] and rounded to int16 here (not by libsndfile) so the
    quantisation is explicit and reproducible.
    """
    audio = to_mono_float32(audio)
    pcm = np.clip(np.round(audio.astype(np.float64) * _INT16_SCALE), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, pcm, int(sr), format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Decode audio bytes (FLAC, WAV, OGG, ...) to (mono float32 array, sample rate)."""
    try:
        arr, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"cannot decode audio bytes ({len(data)} bytes): {exc}") from None
    return to_mono_float32(arr), int(sr)
