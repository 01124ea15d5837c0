"""TTS backends beside Piper: espeak-ng (real binary), WhisperSpeech and Coqui (adapters; no weights here).

WhisperSpeech's and Coqui's synthesis run end to end on tiny models in tests/test_tts_whisperspeech.py and
tests/test_tts_coqui.py (real weights come from the Hub; coqui-tts refuses to import without torchaudio, so
those tests use the import-only stand-in). These tests cover what runs offline: recipe -> library
argument mapping, construction checks, and the one-line error a user gets. No backend output is faked.
"""

from __future__ import annotations

import pickle
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sample_fixtures import spoken_pair

from dataengine.recipe import TTSConfig, VoiceConfig
from dataengine.stage import StageStats
from dataengine.tts import coqui, whisperspeech
from dataengine.tts.base import BACKENDS, make_backend
from dataengine.tts.espeak import EspeakBackend, words_per_minute
from dataengine.tts.stage import TTSStage, choose_voice

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="apt-get install espeak-ng")
TEXT = "The quick brown fox jumps over the lazy dog."


def espeak(voice: str = "en-us", length_scale: float = 1.0, pitch: int | None = None) -> EspeakBackend:
    backend = make_backend(VoiceConfig(backend="espeak", voice=voice, length_scale=length_scale, pitch=pitch))
    assert isinstance(backend, EspeakBackend)
    return backend


def test_registry_knows_every_recipe_backend() -> None:
    assert {"piper", "espeak", "whisperspeech", "coqui"} <= set(BACKENDS)


@needs_espeak
def test_espeak_is_deterministic_and_plausible() -> None:
    backend = espeak()
    a, b = backend.synthesize(TEXT), backend.synthesize(TEXT)
    assert backend.sample_rate == 22050 and a.dtype == np.float32 and a.ndim == 1
    np.testing.assert_array_equal(a, b)
    assert 1.5 < len(a) / 22050 < 5.0 and 0.1 < np.abs(a).max() <= 1.0
    assert backend.synthesize("   ").size == 0
    assert (
        backend.version.startswith("espeak-ng==") and "voice=en-us;wpm=175;pitch=default" in backend.version
    )


@needs_espeak
def test_espeak_speed_pitch_and_voice_change_the_audio() -> None:
    base = espeak().synthesize(TEXT)
    slow = espeak(length_scale=1.5).synthesize(TEXT)
    assert words_per_minute(1.5) == 117 and len(slow) > 1.3 * len(base)
    high = espeak(pitch=90).synthesize(TEXT)
    assert not np.array_equal(high, base)
    female = espeak(voice="en-us+f3").synthesize(TEXT)
    assert not np.array_equal(female, base)


@needs_espeak
def test_espeak_bad_voice_is_one_line_error_and_text_is_not_an_option() -> None:
    with pytest.raises(ValueError) as info:
        espeak(voice="xx-nope").load()
    assert "xx-nope" in str(info.value) and "\n" not in str(info.value)
    audio = espeak().synthesize("--help me")  # stdin: never parsed as an option
    assert audio.size > 0.3 * 22050


@needs_espeak
def test_voice_pool_mixes_piper_and_espeak() -> None:
    voices = [
        VoiceConfig(backend="piper", voice="joe-us", weight=1),
        VoiceConfig(backend="espeak", voice="en-us", length_scale=0.9, weight=1),
    ]
    stage = pickle.loads(pickle.dumps(TTSStage(TTSConfig(voices=voices), seed=5)))
    ids = [f"s{i}" for i in range(200)]
    mix = Counter(choose_voice(voices, 5, i).name for i in ids)
    assert set(mix) == {"piper:joe-us@1", "espeak:en-us@0.9"} and min(mix.values()) > 70
    one_each = [next(i for i in ids if choose_voice(voices, 5, i) is v) for v in voices]
    samples = [spoken_pair(i, n, "Good morning to you.") for n, i in enumerate(one_each)]
    stage(samples, StageStats("tts"))
    assert [s.turns[0].voice for s in samples] == [v.name for v in voices]
    assert all(s.kept and s.turns[0].audio.dtype == np.float32 and s.duration_s > 0.5 for s in samples)
    # each voice really is a different backend: the 16 kHz audio differs
    assert len(samples[0].turns[0].audio) != len(samples[1].turns[0].audio)


def test_voice_names_include_the_model() -> None:
    assert VoiceConfig().name == "piper:joe-us@1"
    v = VoiceConfig(backend="coqui", model=coqui.DEFAULT_MODEL, voice="Ana Florence", language="en")
    assert v.name == f"coqui:{coqui.DEFAULT_MODEL}:Ana Florence@1"


def test_whisperspeech_argument_mapping(tmp_path: Path) -> None:
    t2s, s2a = (
        "collabora/whisperspeech:t2s-small-en+pl.model",
        "collabora/whisperspeech:s2a-q4-tiny-en+pl.model",
    )
    voice = VoiceConfig(
        backend="whisperspeech", voice="default", length_scale=1.25, language="pl", model=t2s, s2a=s2a
    )
    assert whisperspeech.pipeline_kwargs(voice, "cpu") == {
        "t2s_ref": t2s,
        "s2a_ref": s2a,
        "optimize": False,  # whisperspeech2: float32 with KV caches, no CUDA graphs, no compilation
        "torch_compile": False,
        "use_cuda_graph": False,
        "device": "cpu",
    }
    assert whisperspeech.generate_kwargs(voice) == {"lang": "pl", "cps": 12.0}
    assert whisperspeech.generate_kwargs(VoiceConfig(backend="whisperspeech")) == {"lang": "en", "cps": 15.0}
    assert whisperspeech.speaker_spec(voice) == ("builtin", None)
    assert whisperspeech.speaker_spec(voice.model_copy(update={"voice": "voice_b"})) == ("builtin", None)
    emb, wav = tmp_path / "spk.npy", tmp_path / "ref.wav"
    np.save(emb, np.zeros(192, np.float32))
    wav.write_bytes(b"RIFF")
    assert whisperspeech.speaker_spec(voice.model_copy(update={"voice": str(emb)})) == ("embedding", emb)
    assert whisperspeech.speaker_spec(voice.model_copy(update={"voice": str(wav)})) == ("audio", wav)
    with pytest.raises(ValueError, match="speaker-embedding file"):
        whisperspeech.speaker_spec(voice.model_copy(update={"voice": str(tmp_path / "missing.wav")}))
    assert (
        whisperspeech.text_seed("hello")
        == whisperspeech.text_seed("hello")
        != whisperspeech.text_seed("hullo")
    )
    assert whisperspeech._load_embedding(emb).shape == (192,)


def test_whisperspeech_unavailable_is_one_line_error() -> None:
    """whisperspeech2 is installed (tests only) but its pipeline cannot import: vocos needs torchaudio."""
    with pytest.raises(ImportError) as info:
        make_backend(VoiceConfig(backend="whisperspeech", voice="default"))
    message = str(info.value)
    assert message.startswith("the 'whisperspeech' TTS backend cannot import whisperspeech2.pipeline")
    assert "pip install whisperspeech2==2.0.1" in message and "\n" not in message


def test_coqui_argument_mapping(tmp_path: Path) -> None:
    xtts = VoiceConfig(backend="coqui", voice="Ana Florence", length_scale=0.8)
    assert coqui.model_name(xtts) == "tts_models/multilingual/multi-dataset/xtts_v2"
    assert coqui.tts_kwargs(xtts) == {"speaker": "Ana Florence", "language": "en", "speed": 1.25}
    ref = tmp_path / "me.wav"
    ref.write_bytes(b"RIFF")
    clone = xtts.model_copy(update={"voice": str(ref), "language": "de", "length_scale": 1.0})
    assert coqui.tts_kwargs(clone) == {"speaker_wav": str(ref), "language": "de", "speed": 1.0}
    vits = VoiceConfig(backend="coqui", model="tts_models/en/ljspeech/vits", voice="default")
    assert coqui.tts_kwargs(vits) == {}
    with pytest.raises(ValueError, match="only mapped for XTTS"):
        coqui.tts_kwargs(vits.model_copy(update={"length_scale": 1.2}))
    with pytest.raises(ValueError, match="expected a model name"):
        coqui.model_name(VoiceConfig(backend="coqui", model="xtts_v2"))


def test_coqui_unavailable_is_one_line_error() -> None:
    with pytest.raises(ImportError) as info:
        make_backend(VoiceConfig(backend="coqui", voice="Ana Florence"))
    message = str(info.value)
    assert (
        message.startswith("the 'coqui' TTS backend cannot import TTS.api")
        and "pip install coqui-tts" in message
    )
    assert "\n" not in message
