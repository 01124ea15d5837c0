"""The audio filter stage on real Piper speech and its degraded versions (real Silero VAD)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from audio_fixtures import add_white_noise, hard_clipped, piper_backend, speech, through_8k, tone, white_noise
from sample_fixtures import spoken_pair

from dataengine.audio.filters import (
    AUDIO_METRIC_NAMES,
    AUDIO_REJECT_REASONS,
    AudioFilter,
    check_audio,
    failing_reasons,
)
from dataengine.audio.io import resample
from dataengine.audio.vad import SileroVAD
from dataengine.evaluation.signals import coloured_noise, mix_at_snr
from dataengine.recipe import AudioFilterConfig
from dataengine.sample import Sample, Unit
from dataengine.stage import StageStats

SR = 16_000


@pytest.fixture(scope="module")
def stage() -> AudioFilter:
    s = AudioFilter(AudioFilterConfig())
    s.setup()
    return s


def run(stage: AudioFilter, audio: np.ndarray) -> Sample:
    sample = spoken_pair("s0", 0, "p", audio=audio)
    stage([sample], StageStats(stage.name))
    return sample


def test_metric_names_are_exactly_what_the_stage_records(stage: AudioFilter) -> None:
    sample = run(stage, speech())
    assert tuple(sample.turns[0].metrics) == AUDIO_METRIC_NAMES
    assert set(AUDIO_METRIC_NAMES) == {
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
    }
    assert AUDIO_REJECT_REASONS[:3] == ("too_short", "too_long", "non_speech")


def test_clean_speech_is_kept(stage: AudioFilter) -> None:
    sample = run(stage, speech())
    assert sample.kept, sample.reject
    m = sample.turns[0].metrics
    assert m["speech_fraction"] > 0.6 and m["speech_prob_mean"] > 0.6
    assert m["hf_energy_db"] > -40 and m["snr_db"] > 20 and m["clipping_ratio"] < 1e-3


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: through_8k(speech()), "bad_compression"),
        (lambda: add_white_noise(speech(), 0.0), "noise"),
        (lambda: white_noise(3 * SR), "non_speech"),
        (lambda: tone(3.0, 440.0), "non_speech"),
        (lambda: np.zeros(3 * SR, dtype=np.float32), "non_speech"),
        (lambda: hard_clipped(speech()), "clipping"),
        (lambda: speech()[: int(0.25 * SR)], "too_short"),
    ],
    ids=["8khz", "noise0db", "white_noise", "tone440", "silence", "clipped", "short"],
)
def test_degraded_audio_is_rejected_with_reason(stage: AudioFilter, make, reason: str) -> None:
    sample = run(stage, make())
    assert not sample.kept
    assert sample.reject.stage == "audio_filters"
    assert sample.reject.reason == reason
    assert all(math.isfinite(sample.turns[0].metrics[k]) for k in AUDIO_METRIC_NAMES)


def test_too_long_uses_config() -> None:
    stage = AudioFilter(AudioFilterConfig(min_duration_s=0.1, max_duration_s=2.0))
    sample = run(stage, speech())
    assert sample.reject.reason == "too_long"
    assert sample.reject.value == pytest.approx(len(speech()) / SR)


def test_non_speech_vad_separation() -> None:
    vad = SileroVAD()
    assert vad.speech_stats(speech())["speech_prob_mean"] > 0.6
    for audio in (white_noise(2 * SR), tone(2.0), np.zeros(2 * SR, dtype=np.float32)):
        stats = vad.speech_stats(audio)
        assert stats["speech_fraction"] == 0.0 and stats["speech_prob_mean"] < 0.1
    # frames: 32 ms each, the last one padded; results do not depend on earlier calls
    assert len(vad.frame_probs(np.zeros(513, dtype=np.float32))) == 2
    assert np.array_equal(vad.frame_probs(speech()), vad.frame_probs(speech()))


def test_check_audio_returns_all_failing_reasons_in_order() -> None:
    config = AudioFilterConfig()
    metrics, reasons = check_audio(np.zeros(SR // 10, dtype=np.float32), config)
    names = [r for r, _ in reasons]
    assert names[:2] == ["too_short", "non_speech"]
    assert "bad_compression" in names and "noise" in names
    assert names == [r for r in AUDIO_REJECT_REASONS if r in names]
    assert all(math.isfinite(v) for v in metrics.values())
    _, none = check_audio(speech(), config)
    assert none == []


CLEAN_METRICS = {
    "duration_s": 3.0,
    "speech_fraction": 0.9,
    "speech_prob_mean": 0.9,
    "silence_fraction": 0.1,
    "leading_silence_s": 0.1,
    "trailing_silence_s": 0.2,
    "clipping_ratio": 0.0,
    "hf_energy_db": -30.0,
    "band_edge_db": 10.0,
    "spectral_hole_ratio": 0.0,
    "hf_dynamics_db": 20.0,
    "lf_dynamics_db": 40.0,
    "codec_score": -3.0,
    "codec_frames": 300.0,
    "snr_db": 30.0,
    "level_snr_db": 40.0,
}
"""Hand-written metrics of a clip that passes every default threshold (see ``AudioFilterConfig``)."""
NOISY = {"snr_db": 0.0, "level_snr_db": 0.0}


@pytest.mark.parametrize(
    ("changes", "verdict"),
    [
        ({}, None),
        ({"duration_s": 0.2, "clipping_ratio": 0.05, **NOISY}, ("too_short", 0.2)),
        ({"duration_s": 31.0, "speech_fraction": 0.1}, ("too_long", 31.0)),
        ({"speech_fraction": 0.1, "silence_fraction": 0.95}, ("non_speech", 0.1)),  # not also "silence"
        ({"trailing_silence_s": 2.5, "clipping_ratio": 0.01}, ("silence", 2.5)),
        ({"silence_fraction": 0.85, "hf_energy_db": -90.0}, ("silence", (0.85 * 3 - 0.3) / 2.7)),  # interior
        ({"silence_fraction": 0.85, "leading_silence_s": 1.2, "trailing_silence_s": 1.3}, None),  # one word
        ({"clipping_ratio": 0.01, "hf_energy_db": -90.0}, ("clipping", 0.01)),
        ({"band_edge_db": 50.0, "hf_energy_db": -90.0, **NOISY}, ("bad_compression", 50.0)),
        ({"hf_energy_db": -90.0, **NOISY}, ("bad_compression", -90.0)),
        ({"hf_dynamics_db": 1.0}, ("bad_compression", 1.0)),
        ({"hf_dynamics_db": 1.0, "lf_dynamics_db": 20.0}, None),  # a quiet telephone band: gate closed
        ({"spectral_hole_ratio": 0.05}, ("bad_compression", 0.05)),
        ({"codec_score": 0.0}, ("bad_compression", 0.0)),
        ({"codec_score": 0.0, "codec_frames": 100.0}, None),  # a short clip gets the looser limit
        ({"codec_score": 2.5, "codec_frames": 100.0}, ("bad_compression", 2.5)),
        ({"snr_db": 5.0, "level_snr_db": 10.0}, ("noise", 5.0)),
        ({"snr_db": 5.0}, None),  # noise needs both estimates to agree
    ],
)
def test_decide_takes_first_failing_reason(changes: dict[str, float], verdict: tuple | None) -> None:
    """Metrics written by hand, verdicts known in advance: the first failing check in
    AUDIO_REJECT_REASONS order, with the value of the metric that failed."""
    metrics = {**CLEAN_METRICS, **changes}
    assert AudioFilter(AudioFilterConfig()).decide(metrics) == verdict
    strict = AudioFilter(AudioFilterConfig(min_snr_db=1000.0, min_level_snr_db=1000.0))
    assert strict.decide(metrics) == (verdict or ("noise", metrics["snr_db"]))  # its own thresholds


def test_silence_is_not_a_second_reason_for_non_speech() -> None:
    metrics = {**CLEAN_METRICS, "speech_fraction": 0.1, "silence_fraction": 0.95}
    assert failing_reasons(metrics, AudioFilterConfig()) == [("non_speech", 0.1)]
    assert failing_reasons({**CLEAN_METRICS, "silence_fraction": 0.95}, AudioFilterConfig()) == [
        ("silence", (0.95 * 3 - 0.3) / 2.7)
    ]


def test_narrow_band_speech_fails_compression_before_noise() -> None:
    strict = AudioFilterConfig(min_snr_db=1000.0, min_level_snr_db=1000.0)  # nothing passes the noise check
    metrics, reasons = check_audio(through_8k(speech()), strict)
    assert [r for r, _ in reasons] == ["bad_compression", "noise"]
    assert AudioFilter(strict).decide(metrics)[0] == "bad_compression"


def test_the_stage_records_the_first_failing_reason_with_its_turn() -> None:
    strict = AudioFilterConfig(min_snr_db=1000.0, min_level_snr_db=1000.0)
    metrics, reasons = check_audio(through_8k(speech()), strict)
    sample = spoken_pair("s", 0, "p", audio=through_8k(speech()))
    sample.turns[0].metrics = dict(metrics)
    unit = Unit(sample, 0)
    assert AudioFilter(strict).failures(unit) == reasons  # every one (what audio-check reports)
    AudioFilter(strict).judge(unit)
    assert (sample.reject.reason, sample.reject.turn) == ("bad_compression", 0)


def test_missing_audio_becomes_error_reject_and_stage_pickles(stage: AudioFilter) -> None:
    sample = spoken_pair("x", 0, "p")
    stage([sample], StageStats(stage.name))
    assert sample.reject.reason == "error" and "no audio" in sample.reject.detail
    clone = pickle.loads(pickle.dumps(stage))
    clone.setup()
    assert run(clone, speech()).kept


FRICATIVES_TEXT = "She sells seashells"
"""Full of s and sh sounds: the energy above 6 kHz that the clips below lack."""


@pytest.mark.parametrize("text", ["You are immortal", "When will you walk", "You are not immortal"])
def test_short_speech_without_fricatives_is_not_bad_compression(stage: AudioFilter, text: str) -> None:
    """Regression: these clean Piper clips measured -41 to -46 dB above 6 kHz (no s/f/sh sounds) and
    were dropped by the first threshold (-40 dB); codec-damaged audio measures -79 dB and below.

    The precondition compares two clips measured on this machine (measured: 25-30 dB apart), not a
    level one CPU gave, and the clip must be kept with a wide margin above the threshold."""
    backend = piper_backend()
    audio = resample(backend.synthesize(text), backend.sample_rate, SR)
    fricatives = resample(backend.synthesize(FRICATIVES_TEXT), backend.sample_rate, SR)
    sample = run(stage, audio)
    reference = run(stage, fricatives).turns[0].metrics["hf_energy_db"]
    assert sample.turns[0].metrics["hf_energy_db"] < reference - 15
    assert sample.kept, sample.reject
    assert sample.turns[0].metrics["hf_energy_db"] > stage.config.min_hf_energy_db + 15
    assert run(stage, through_8k(audio)).reject.reason == "bad_compression"


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_telephone_speech_with_a_noise_floor_added_afterwards(stage: AudioFilter, colour: str) -> None:
    """No spectral cliff is left once a wideband floor is added after the 8 kHz link (35 dB down): the
    4.5-7.5 kHz band then holds only the stationary floor while the telephone band moves with speech.
    The same floor under wideband speech is kept."""
    x = speech()
    floor = coloured_noise(len(x), colour, seed=4)
    phone = run(stage, mix_at_snr(through_8k(x), floor, 35.0))
    metrics = phone.turns[0].metrics
    assert phone.reject.reason == "bad_compression", metrics
    assert phone.reject.value == metrics["hf_dynamics_db"]
    assert metrics["band_edge_db"] < AudioFilterConfig().max_band_edge_db  # the edge alone misses it
    wide = run(stage, mix_at_snr(x, floor, 35.0))
    assert wide.kept, wide.reject


def test_short_clips_face_the_stricter_codec_threshold() -> None:
    """A codec score between the two thresholds rejects a long clip but not a short (noisy-score) one."""
    config = AudioFilterConfig()
    metrics, reasons = check_audio(speech(), config)
    assert reasons == [] and metrics["codec_frames"] > 0
    between = {**metrics, "codec_score": (config.max_codec_score + config.max_codec_score_short) / 2}
    long_clip = {**between, "codec_frames": float(config.codec_short_frames)}
    short_clip = {**between, "codec_frames": float(config.codec_short_frames - 1)}
    assert failing_reasons(long_clip, config) == [("bad_compression", between["codec_score"])]
    assert failing_reasons(short_clip, config) == []
    above = {**short_clip, "codec_score": config.max_codec_score_short + 0.1}
    assert [r for r, _ in failing_reasons(above, config)] == ["bad_compression"]
