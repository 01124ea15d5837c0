"""The 16-bit PCM grid: shards store 16-bit FLAC, so audio is put on that grid once, right after TTS."""

from __future__ import annotations

import numpy as np

PCM16_SCALE = 32768.0
"""int16 <-> float scale, the one libsndfile uses when it reads 16-bit files as float."""


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 (rounded, clipped)."""
    return np.clip(np.round(np.asarray(audio, np.float64) * PCM16_SCALE), -32768, 32767).astype(np.int16)


def from_pcm16(pcm: np.ndarray) -> np.ndarray:
    return (np.asarray(pcm, np.int16).astype(np.float32) / np.float32(PCM16_SCALE)).astype(np.float32)


def quantize_pcm16(audio: np.ndarray) -> np.ndarray:
    """The float32 audio a 16-bit file round trip gives back (encode_flac -> decode_audio is exact on it)."""
    return from_pcm16(to_pcm16(audio))
