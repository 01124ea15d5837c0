"""Seeded synthetic signals and degradations for the evaluation corpus (16 kHz mono float32).

Noise colours, mains hum, music-like signals, tones, a synthetic room impulse response, and mixing at
an exact SNR or loudness. Every function is deterministic for its ``seed``.
"""

from __future__ import annotations

import numpy as np

from dataengine.sample import AUDIO_SAMPLE_RATE as SR


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def rms(x: np.ndarray) -> float:
    """Root mean square (0 for empty input)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def coloured_noise(n: int, colour: str, seed: int = 0) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) Gaussian noise scaled to RMS 0.1."""
    white = _rng(seed).standard_normal(n)
    if colour != "white":
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, 1.0 / SR)
        f[0] = f[1] if n > 1 else 1.0
        spec /= np.sqrt(f) if colour == "pink" else f
        if colour not in ("pink", "brown"):
            raise ValueError(f"unknown noise colour {colour!r}")
        white = np.fft.irfft(spec, n)
    return (white * 0.1 / max(rms(white), 1e-12)).astype(np.float32)


def hum(n: int, mains_hz: float = 50.0, seed: int = 0) -> np.ndarray:
    """Mains hum: the fundamental plus decaying odd and even harmonics, random phases, RMS 0.1."""
    t = np.arange(n) / SR
    phases = _rng(seed).uniform(0, 2 * np.pi, 8)
    x = sum(np.sin(2 * np.pi * mains_hz * k * t + phases[k - 1]) / k for k in range(1, 9))
    return (x * 0.1 / max(rms(x), 1e-12)).astype(np.float32)


def tone(n: int, freqs: tuple[float, ...] = (440.0,), amp: float = 0.3) -> np.ndarray:
    """A sum of steady sine tones (a chord when several)."""
    t = np.arange(n) / SR
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    return (amp * x).astype(np.float32)


def music(n: int, seed: int = 0, tempo_bpm: float = 120.0) -> np.ndarray:
    """A music-like signal: a random pentatonic melody of harmonic notes with envelopes over a bass
    line, a chord pad and noise-burst drums (kick and hi-hat); peak 0.5."""
    rng = _rng(seed)
    beat = int(SR * 60.0 / tempo_bpm / 2)
    scale = np.array([0, 2, 4, 7, 9, 12, 14, 16])
    root = 220.0 * 2 ** (rng.integers(-3, 4) / 12)
    out = np.zeros(n + beat, dtype=np.float64)
    t = np.arange(beat) / SR
    env = np.exp(-t * rng.uniform(3, 8)) * np.minimum(1.0, t * 200)
    n_harm = int(rng.integers(3, 8))
    for i, start in enumerate(range(0, n, beat)):
        f = root * 2 ** (scale[rng.integers(len(scale))] / 12)
        note = sum(np.sin(2 * np.pi * f * h * t) / h**1.2 for h in range(1, n_harm + 1))
        out[start : start + beat] += 0.5 * env * note
        if i % 2 == 0:
            bass = root / 2 * 2 ** (scale[rng.integers(3)] / 12)
            out[start : start + beat] += 0.4 * np.sin(2 * np.pi * bass * t) * np.exp(-t * 2)
        if i % 4 == 0:  # kick: a falling sine
            out[start : start + beat] += (
                0.6 * np.sin(2 * np.pi * (60 + 80 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
            )
        hat = rng.standard_normal(beat) * np.exp(-t * 60)
        out[start : start + beat] += 0.08 * np.diff(hat, prepend=0.0)
    pad_t = np.arange(n) / SR
    out[:n] += 0.1 * sum(np.sin(2 * np.pi * root * r * pad_t) for r in (1.0, 1.26, 1.5))
    x = out[:n]
    return (0.5 * x / max(float(np.abs(x).max()), 1e-12)).astype(np.float32)


def room_impulse(rt60_s: float, seed: int = 0, direct: float = 1.0) -> np.ndarray:
    """A synthetic room impulse response: a direct path plus exponentially decaying noise (given RT60)."""
    n = int(rt60_s * SR)
    t = np.arange(n) / SR
    tail = _rng(seed).standard_normal(n) * np.exp(-6.9 * t / rt60_s) * 0.3
    tail[: int(0.003 * SR)] = 0.0  # first reflections arrive after a few ms
    tail[0] = direct
    return tail.astype(np.float64)


def reverberate(audio: np.ndarray, rt60_s: float, seed: int = 0) -> np.ndarray:
    """Convolve with :func:`room_impulse`, keep the input length and the input peak."""
    wet = np.convolve(audio.astype(np.float64), room_impulse(rt60_s, seed))[: len(audio)]
    peak = float(np.abs(audio).max()) or 1.0
    return (wet * peak / max(float(np.abs(wet).max()), 1e-12)).astype(np.float32)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` plus ``noise`` scaled so that speech energy / noise energy is ``snr_db`` over the
    speech's active part (frames within 40 dB of the loudest), peak-limited to 0.99 by scaling down."""
    noise = np.resize(noise, len(speech)).astype(np.float64)
    active = active_rms(speech)
    scaled = noise * active / max(rms(noise), 1e-12) / 10 ** (snr_db / 20)
    out = speech.astype(np.float64) + scaled
    peak = float(np.abs(out).max())
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32)


def active_rms(audio: np.ndarray, frame: int = 512) -> float:
    """RMS over the frames within 40 dB of the loudest one (speech level without pauses)."""
    n = len(audio) // frame
    if n == 0:
        return rms(audio)
    power = np.square(audio[: n * frame].astype(np.float64)).reshape(n, frame).mean(axis=1)
    keep = power >= power.max() * 1e-4
    return float(np.sqrt(power[keep].mean()))


def set_level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale so that :func:`active_rms` is ``dbfs`` dB relative to full scale."""
    level = active_rms(audio)
    return (audio * (10 ** (dbfs / 20) / max(level, 1e-12))).astype(np.float32)


def babble(voices: list[np.ndarray], n: int, seed: int = 0) -> np.ndarray:
    """Overlapping talkers: each voice looped, randomly offset and equalised, summed; RMS 0.1."""
    rng = _rng(seed)
    out = np.zeros(n, dtype=np.float64)
    for v in voices:
        looped = np.resize(v, n + len(v))
        start = int(rng.integers(len(v)))
        out += looped[start : start + n] / max(active_rms(v), 1e-12)
    return (out * 0.1 / max(rms(out), 1e-12)).astype(np.float32)
