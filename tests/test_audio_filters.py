"""The audio filter stage on real Piper speech and its degraded versions (real Silero VAD)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from audio_fixtures import add_white_noise, hard_clipped, piper_backend, speech, through_8k, tone, white_noise

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
from dataengine.sample import Sample
from dataengine.stage import StageStats

SR = 16_000


@pytest.fixture(scope="module")
def stage() -> AudioFilter:
    s = AudioFilter(AudioFilterConfig())
    s.setup()
    return s


def run(stage: AudioFilter, audio: np.ndarray) -> Sample:
    sample = Sample(id="s0", index=0, prompt="p", response="r", audio=audio)
    stage([sample], StageStats(stage.name))
    return sample


def test_metric_names_are_exactly_what_the_stage_records(stage: AudioFilter) -> None:
    sample = run(stage, speech())
    assert tuple(sample.metrics) == AUDIO_METRIC_NAMES
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
    m = sample.metrics
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
    assert all(math.isfinite(sample.metrics[k]) for k in AUDIO_METRIC_NAMES)


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


def test_decide_takes_first_failing_reason(stage: AudioFilter) -> None:
    strict = AudioFilterConfig(min_snr_db=1000.0, min_level_snr_db=1000.0)  # nothing passes the noise check
    metrics, reasons = check_audio(through_8k(speech()), strict)
    assert [r for r, _ in reasons] == ["bad_compression", "noise"]
    assert AudioFilter(strict).decide(metrics) == reasons[0]
    assert stage.decide(metrics) == reasons[0]


def test_missing_audio_becomes_error_reject_and_stage_pickles(stage: AudioFilter) -> None:
    sample = Sample(id="x", index=0, prompt="p", response="r")
    stage([sample], StageStats(stage.name))
    assert sample.reject.reason == "error" and "no audio" in sample.reject.detail
    clone = pickle.loads(pickle.dumps(stage))
    clone.setup()
    assert run(clone, speech()).kept


@pytest.mark.parametrize("text", ["You are immortal", "When will you walk", "You are not immortal"])
def test_short_speech_without_fricatives_is_not_bad_compression(stage: AudioFilter, text: str) -> None:
    """Regression: these clean Piper clips measured -41 to -46 dB above 6 kHz (no s/f/sh sounds) and
    were dropped by the first threshold (-40 dB); codec-damaged audio measures -79 dB and below."""
    backend = piper_backend()
    audio = resample(backend.synthesize(text), backend.sample_rate, SR)
    sample = run(stage, audio)
    assert sample.metrics["hf_energy_db"] < -40
    assert sample.kept, sample.reject
    assert run(stage, through_8k(audio)).reject.reason == "bad_compression"


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_telephone_speech_with_a_noise_floor_added_afterwards(stage: AudioFilter, colour: str) -> None:
    """No spectral cliff is left once a wideband floor is added after the 8 kHz link (35 dB down): the
    4.5-7.5 kHz band then holds only the stationary floor while the telephone band moves with speech.
    The same floor under wideband speech is kept."""
    x = speech()
    floor = coloured_noise(len(x), colour, seed=4)
    phone = run(stage, mix_at_snr(through_8k(x), floor, 35.0))
    assert phone.reject.reason == "bad_compression", phone.metrics
    assert phone.reject.value == phone.metrics["hf_dynamics_db"]
    assert phone.metrics["band_edge_db"] < AudioFilterConfig().max_band_edge_db  # the edge alone misses it
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
