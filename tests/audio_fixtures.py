"""Shared, cached test audio: real Piper speech at 16 kHz and its degraded versions (built once)."""

from __future__ import annotations

from functools import cache

import numpy as np

from dataengine.audio.io import resample
from dataengine.recipe import VoiceConfig
from dataengine.sample import AUDIO_SAMPLE_RATE as SR
from dataengine.tts.base import TTSBackend, make_backend

SPEECH_TEXT = (
    "Hello there. What is the capital of France, and why is it so famous for its museums? "
    "Please answer in two short sentences."
)


@cache
def piper_backend() -> TTSBackend:
    backend = make_backend(VoiceConfig())
    backend.load()
    return backend


@cache
def _speech() -> np.ndarray:
    backend = piper_backend()
    audio = resample(backend.synthesize(SPEECH_TEXT), backend.sample_rate, SR)
    audio.setflags(write=False)
    return audio


def speech() -> np.ndarray:
    """Clean Piper speech, 16 kHz mono float32 (a fresh copy)."""
    return _speech().copy()


def white_noise(n: int, seed: int = 0, rms: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * rms).astype(np.float32)


def add_white_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """``audio`` plus white Gaussian noise at exactly ``snr_db`` (energy over the whole clip)."""
    noise = np.random.default_rng(seed).standard_normal(len(audio))
    noise *= np.sqrt(np.mean(audio.astype(np.float64) ** 2) / np.mean(noise**2)) / 10 ** (snr_db / 20)
    return (audio + noise).astype(np.float32)


def tone(seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def through_8k(audio: np.ndarray) -> np.ndarray:
    """Band-limit as a narrow-band link would: down to 8 kHz and back up to 16 kHz."""
    return resample(resample(audio, SR, 8000), 8000, SR)


def hard_clipped(audio: np.ndarray, gain: float = 8.0) -> np.ndarray:
    return np.clip(audio * gain, -1.0, 1.0).astype(np.float32)


def through_codec(audio: np.ndarray, codec: str, bitrate: int | None = None) -> np.ndarray:
    """Round trip through a real codec (PyAV/FFmpeg or the GSM reference coder), back at 16 kHz."""
    from dataengine.evaluation.codecs import codec_roundtrip

    return codec_roundtrip(audio, SR, codec, bitrate)
