"""The conditions themselves: pure functions of (audio, drawn parameters) -> audio, 16 kHz mono float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataengine.evaluation.signals import coloured_noise
from dataengine.sample import AUDIO_SAMPLE_RATE as SR

MAX_IMAGE_ORDER = 40
"""Image-source reflections computed per room (the full Sabine order of a 0.8 s room is ~100 and takes
0.7 s per turn; 40 reaches the decay's first 40-50 dB in 0.03-0.1 s)."""


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0


def dbfs(audio: np.ndarray) -> float:
    """RMS level in dB below full scale (-inf for digital silence)."""
    level = rms(audio)
    return 20 * np.log10(level) if level > 0 else float("-inf")


def room_impulse_response(
    rt60_s: float, dims: tuple[float, float, float], source: tuple, mic: tuple
) -> np.ndarray:
    """A shoebox room's impulse response (pyroomacoustics, image source method, no random jitter: the
    same parameters give the same samples), normalised to a direct path of 1."""
    import pyroomacoustics as pra

    absorption, order = pra.inverse_sabine(rt60_s, list(dims))
    room = pra.ShoeBox(
        list(dims),
        fs=SR,
        materials=pra.Material(absorption),
        max_order=min(order, MAX_IMAGE_ORDER),
        use_rand_ism=False,
        air_absorption=False,
    )
    room.add_source(list(source))
    room.add_microphone(list(mic))
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], np.float64)
    peak = float(np.max(np.abs(rir)))
    return rir / peak if peak > 0 else rir


def reverberate(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve and keep the input's length, aligned on the direct path (the room adds no delay)."""
    from scipy.signal import fftconvolve

    onset = int(np.argmax(np.abs(rir)))
    wet = fftconvolve(audio.astype(np.float64), rir)[onset : onset + len(audio)]
    return (wet * (rms(audio) / max(rms(wet), 1e-12))).astype(np.float32)  # same speech level as before


def background(files: tuple[Path, ...], n: int, rng: np.random.Generator) -> tuple[np.ndarray, Path]:
    """``n`` samples of one recording from a seeded offset (looped when shorter), and the file used."""
    from dataengine.noise.clips import load_recording

    path = files[int(rng.integers(len(files)))]
    track = load_recording(path)
    if len(track) == 0:
        raise ValueError(f"background recording {path.name} is empty")
    if len(track) < n:
        track = np.tile(track, n // len(track) + 1)
    start = int(rng.integers(len(track) - n + 1))
    return track[start : start + n].astype(np.float32), path


def add_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` plus ``noise`` scaled so that RMS(speech) / RMS(noise) is ``snr_db``."""
    level = rms(noise)
    if level <= 0:
        return speech.copy()
    gain = rms(speech) / level * 10 ** (-snr_db / 20)
    return (speech + gain * noise).astype(np.float32)


def set_level(audio: np.ndarray, rms_dbfs: float, peak_limit: float = 0.95) -> tuple[np.ndarray, float]:
    """Scale to ``rms_dbfs`` (less when that would push the peak over ``peak_limit``: a microphone's
    gain is set so it does not clip); returns the audio and the gain applied in dB."""
    level = rms(audio)
    if level <= 0:
        return audio.copy(), 0.0
    gain = 10 ** (rms_dbfs / 20) / level
    peak = float(np.max(np.abs(audio))) * gain
    if peak > peak_limit:
        gain *= peak_limit / peak
    return (audio * gain).astype(np.float32), float(20 * np.log10(gain))


def noise_floor(n: int, floor_dbfs: float, seed: int) -> np.ndarray:
    """Pink noise at ``floor_dbfs`` RMS: the self-noise of a microphone and preamp, never digital zero."""
    noise = coloured_noise(n, "pink", seed).astype(np.float64)
    return (noise * (10 ** (floor_dbfs / 20) / max(rms(noise), 1e-12))).astype(np.float32)


def rumble(n: int, level: float, seed: int) -> np.ndarray:
    """A small DC offset plus brown noise low-passed at 80 Hz (handling noise, traffic, air handling), of
    RMS ``level``."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, 80.0, btype="low", fs=SR, output="sos")
    low = sosfilt(sos, coloured_noise(n, "brown", seed).astype(np.float64))
    low = low / max(rms(low), 1e-12)
    return (level * (0.7 * low + 0.3)).astype(np.float32)  # 30 % of it a DC offset


def codec(audio: np.ndarray, name: str, bitrate: int) -> np.ndarray:
    """A lossy round trip (the filter evaluation's PyAV codecs)."""
    from dataengine.evaluation.codecs import codec_roundtrip

    return codec_roundtrip(audio, SR, name, bitrate).astype(np.float32)
