"""TTS: the Piper backend (real model), the registry and the TTS stage's seeded voice choice."""

from __future__ import annotations

import pickle
import sys
from collections import Counter

import numpy as np
import pytest
from audio_fixtures import SPEECH_TEXT, piper_backend
from sample_fixtures import spoken_pair

from dataengine.hashing import unit_draw
from dataengine.recipe import TTSConfig, VoiceConfig
from dataengine.sample import AUDIO_SAMPLE_RATE
from dataengine.stage import StageStats
from dataengine.tts.base import TTSBackend, make_backend
from dataengine.tts.stage import TTSStage, choose_voice


def test_piper_is_deterministic_with_plausible_duration() -> None:
    backend = piper_backend()
    assert isinstance(backend, TTSBackend)
    assert backend.sample_rate == 22050
    a = backend.synthesize("The quick brown fox jumps over the lazy dog.")
    b = backend.synthesize("The quick brown fox jumps over the lazy dog.")
    assert a.dtype == np.float32 and a.ndim == 1
    assert np.array_equal(a, b)
    seconds = len(a) / backend.sample_rate
    assert 1.5 < seconds < 5.0
    assert 0.5 < np.max(np.abs(a)) <= 1.0


def test_piper_version_names_package_model_and_settings() -> None:
    version = piper_backend().version
    assert "piper-tts==1.8.0" in version and "en_US-joe-medium.onnx:" in version
    assert "length_scale=1" in version and "noise_scale=0" in version
    assert make_backend(VoiceConfig(length_scale=1.2)).version != version


def test_registry_errors() -> None:
    bad = VoiceConfig.model_construct(backend="nope", voice="x", length_scale=1.0, weight=1.0)
    with pytest.raises(ValueError, match="unknown TTS backend 'nope'"):
        make_backend(bad)
    with pytest.raises(ValueError, match="unknown Piper voice"):
        make_backend(VoiceConfig(voice="no-such-voice"))


def test_missing_piper_package_raises_install_hint(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)  # makes `import piper` fail
    with pytest.raises(ImportError, match="pip install piper-tts"):
        make_backend(VoiceConfig())


def test_tts_stage_outputs_16khz_float32() -> None:
    stage = TTSStage(TTSConfig(), seed=0)
    stage.setup()
    samples = [
        spoken_pair("a", 0, SPEECH_TEXT),
        spoken_pair("b", 1, "   "),
    ]
    stats = StageStats("tts")
    stage(samples, stats)
    ok, empty = samples
    turn = ok.turns[0]
    assert ok.kept and turn.voice == "piper:joe-us@1"
    assert turn.audio.dtype == np.float32 and turn.audio.ndim == 1
    raw = piper_backend().synthesize(SPEECH_TEXT)
    assert abs(len(turn.audio) - len(raw) * AUDIO_SAMPLE_RATE / 22050) <= 2
    assert 4.0 < ok.duration_s < 12.0
    assert empty.reject.stage == "tts" and empty.reject.reason == "tts_failed"
    assert stats.seen == 2 and stats.dropped == 1


def test_length_scale_slows_speech_and_stage_pickles() -> None:
    fast, slow = VoiceConfig(length_scale=1.0, weight=1), VoiceConfig(length_scale=1.5, weight=1)
    stage = TTSStage(TTSConfig(voices=[fast, slow]), seed=7)
    clone = pickle.loads(pickle.dumps(stage))
    clone.setup()
    assert set(clone.backends) == {fast.name, slow.name}
    ids = [f"id{i}" for i in range(20)]
    id_fast = next(i for i in ids if choose_voice([fast, slow], 7, i) is fast)
    id_slow = next(i for i in ids if choose_voice([fast, slow], 7, i) is slow)
    samples = [spoken_pair(i, n, "Good morning to you all.") for n, i in enumerate([id_fast, id_slow])]
    clone(samples, StageStats("tts"))
    assert [s.turns[0].voice for s in samples] == [fast.name, slow.name]
    assert len(samples[1].turns[0].audio) > 1.3 * len(samples[0].turns[0].audio)
    assert pickle.loads(pickle.dumps(clone)).backends == {}


def test_voice_draw_is_deterministic_uniform_and_weight_respecting() -> None:
    a, b = VoiceConfig(voice="joe-us", length_scale=1.0, weight=3), VoiceConfig(length_scale=1.2, weight=1)
    ids = [f"sample-{i}" for i in range(400)]
    first = [choose_voice([a, b], 123, i).name for i in ids]
    assert first == [choose_voice([a, b], 123, i).name for i in reversed(ids)][::-1]  # order-independent
    share = Counter(first)[a.name] / len(ids)
    assert abs(share - 0.75) < 0.07
    other_seed = [choose_voice([a, b], 124, i).name for i in ids]
    assert other_seed != first
    draws = [unit_draw(0, i) for i in ids]
    assert all(0.0 <= u < 1.0 for u in draws) and abs(np.mean(draws) - 0.5) < 0.05
    assert unit_draw(5, "x") == unit_draw(5, "x") != unit_draw(6, "x")
