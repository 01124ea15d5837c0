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


def path_problem(path: Path) -> str:
    """Why ``path`` cannot be read as an audio file, in a few words ("" when it is a regular file)."""
    if path.is_file():
        return ""
    if path.is_dir():
        return "is a folder, not an audio file"
    if path.exists():
        return "not a regular file"
    return "no such file"


def read_audio_file(
    path: str | Path, target_sr: int = AUDIO_SAMPLE_RATE
) -> tuple[np.ndarray, dict[str, int]]:
    """Read a user's file (WAV/FLAC/OGG/MP3 via libsndfile, anything else FFmpeg decodes via PyAV) as
    mono float32 at ``target_sr``, with its ``sample_rate`` and ``channels``.

    Raises ValueError with a one-line reason when the file is missing, unreadable or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(path_problem(path))
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        channels = data.shape[1]
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as first:
        try:
            data, sr, channels = _read_with_pyav(path)
        except Exception:  # noqa: BLE001 - any decoder failure means the file is unreadable
            raise ValueError(f"cannot decode audio: {str(first).splitlines()[0]}") from None
    if data.size == 0 or sr <= 0:
        raise ValueError("no audio samples")
    mono = to_mono_float32(data)
    if not np.isfinite(mono).all():
        raise ValueError("audio holds NaN or infinite samples")
    return resample(mono, int(sr), target_sr), {"sample_rate": int(sr), "channels": int(channels)}


def _read_with_pyav(path: Path) -> tuple[np.ndarray, int, int]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        channels = stream.channels
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
        rate = stream.rate
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return data.reshape(-1, 1), int(rate), int(channels)
