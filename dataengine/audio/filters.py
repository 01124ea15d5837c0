"""The audio filter stage: measure each clip, drop the ones that are too short/long, not speech,
band-limited by a codec, noisy or clipped."""

from __future__ import annotations

import numpy as np

from dataengine.audio.metrics import clipping_ratio, duration_s, hf_energy_db, wada_snr_db
from dataengine.audio.vad import SileroVAD
from dataengine.recipe import AudioFilterConfig
from dataengine.sample import AUDIO_SAMPLE_RATE, Sample
from dataengine.stage import FilterStage

AUDIO_METRIC_NAMES: tuple[str, ...] = (
    "duration_s",
    "hf_energy_db",
    "snr_db",
    "speech_fraction",
    "speech_prob_mean",
    "clipping_ratio",
)
"""The metric keys :func:`measure_audio` returns, in a fixed order (one manifest column each)."""

AUDIO_REJECT_REASONS: tuple[str, ...] = (
    "too_short",
    "too_long",
    "non_speech",
    "bad_compression",
    "noise",
    "clipping",
)
"""Reject reasons, in the order they are checked."""

CLIP_LEVEL = 0.99
"""A sample with ``|x|`` at or above this counts as clipped (Piper peak-normalises to 1.0)."""

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
    metrics = {
        "duration_s": duration_s(audio, AUDIO_SAMPLE_RATE),
        "hf_energy_db": hf_energy_db(audio, AUDIO_SAMPLE_RATE, config.hf_cutoff_hz),
        "snr_db": wada_snr_db(audio),
        "speech_fraction": speech["speech_fraction"],
        "speech_prob_mean": speech["speech_prob_mean"],
        "clipping_ratio": clipping_ratio(audio, CLIP_LEVEL),
    }
    return {name: metrics[name] for name in AUDIO_METRIC_NAMES}


def failing_reasons(metrics: dict[str, float], config: AudioFilterConfig) -> list[tuple[str, float]]:
    """Every ``(reason, value)`` the metrics fail, in the order of :data:`AUDIO_REJECT_REASONS`."""
    checks = (
        ("too_short", "duration_s", metrics["duration_s"] < config.min_duration_s),
        ("too_long", "duration_s", metrics["duration_s"] > config.max_duration_s),
        ("non_speech", "speech_fraction", metrics["speech_fraction"] < config.min_speech_fraction),
        ("bad_compression", "hf_energy_db", metrics["hf_energy_db"] < config.min_hf_energy_db),
        ("noise", "snr_db", metrics["snr_db"] < config.min_snr_db),
        ("clipping", "clipping_ratio", metrics["clipping_ratio"] > config.max_clipping_ratio),
    )
    return [(reason, float(metrics[key])) for reason, key, failed in checks if failed]


def check_audio(
    audio: np.ndarray, config: AudioFilterConfig, vad: SileroVAD | None = None
) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Measure one clip and return ``(metrics, all failing (reason, value) pairs)``; empty list = keep."""
    metrics = measure_audio(audio, config, vad)
    return metrics, failing_reasons(metrics, config)


class AudioFilter(FilterStage):
    """Filter stage over ``sample.audio``; the first failing check (AUDIO_REJECT_REASONS order) drops it."""

    name = "audio_filters"

    def __init__(self, config: AudioFilterConfig | None = None) -> None:
        self.config = config or AudioFilterConfig()
        self._vad: SileroVAD | None = None

    def setup(self) -> None:
        if self._vad is None:
            self._vad = SileroVAD()
        self._vad.load()

    def measure(self, sample: Sample) -> dict[str, float]:
        if sample.audio is None:
            raise ValueError("sample has no audio (did TTS run?)")
        if self._vad is None:
            self.setup()
        return measure_audio(sample.audio, self.config, self._vad)

    def decide(self, metrics: dict[str, float]) -> tuple[str, float] | None:
        reasons = failing_reasons(metrics, self.config)
        return reasons[0] if reasons else None
