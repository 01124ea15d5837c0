"""WhisperSpeech's own synthesis code (``whisperspeech2`` 2.0.1 + Vocos + Encodec) end to end, on tiny models.

The checkpoints are random and tiny (``tests/tts_fixtures.py``), made with the library's classes and saved
in its formats; the adapter loads them through its real paths: local checkpoint files, and the library's
default Hub references served from an offline huggingface_hub cache (plus Encodec in torch.hub's cache).
Vocos imports torchaudio, which cannot be installed beside CPU torch 2.13: the import-only stand-in
(``tests/stubs/torchaudio_standin.py``, every call raises) is in place while the packages import; the
synthesis path calls no torchaudio function. The audio is noise (random weights): the tests check that it
is made, deterministic, 24 kHz, and flows through a build, never what it sounds like.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import tts_fixtures as tf

from dataengine.recipe import Recipe, VoiceConfig
from dataengine.tts.base import make_backend
from dataengine.tts.whisperspeech import WhisperSpeechBackend

# found, not imported: vocos and encodec import torchaudio, so they import only with the stand-in
_MISSING = [n for n in ("whisperspeech2", "vocos", "encodec", "scipy") if importlib.util.find_spec(n) is None]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning"),
    pytest.mark.skipif(bool(_MISSING), reason=f"test-only: pip install --no-deps {' '.join(_MISSING)}"),
]
DEFAULT_T2S = "collabora/whisperspeech:t2s-small-en+pl.model"
DEFAULT_S2A = "collabora/whisperspeech:s2a-q4-small-en+pl.model"
TEXT = "Hello there, how are you?"
TEXTS = [f"Sentence number {n} for the tiny model." for n in range(12)]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Tiny checkpoints: local files, and the same files at the library's default Hub references."""
    before = set(sys.modules)
    tf.import_whisperspeech2()
    root = tmp_path_factory.mktemp("whisperspeech")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(root / "torch"))  # torch.hub's cache, where Vocos finds Encodec
        tf.encodec_in_torch_hub(root / "torch")
        t2s, s2a = tf.tiny_t2s(root / "t2s.model", eos_logit=2.5), tf.tiny_s2a(root / "s2a.model")
        tf.tiny_vocos(tf.hub_snapshot(root / "hf", tf.VOCOS_REPO))
        for ref, local in ((DEFAULT_T2S, t2s), (DEFAULT_S2A, s2a)):
            repo, _, filename = ref.partition(":")
            (tf.hub_snapshot(root / "hf", repo) / filename).write_bytes(local.read_bytes())
        yield {"root": root, "t2s": t2s, "s2a": s2a}
    # later tests must see the product's view: whisperspeech2.pipeline does not import without torchaudio
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("whisperspeech2", "vocos", "encodec"):
            del sys.modules[name]


@pytest.fixture
def offline(models, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    home = models["root"] / "hf"
    tf.offline_hub(home, monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(models["root"] / "torch"))
    torch.set_num_threads(1)


def whisperspeech(**kw: object) -> WhisperSpeechBackend:
    backend = make_backend(VoiceConfig(backend="whisperspeech", **kw))
    assert isinstance(backend, WhisperSpeechBackend)
    return backend


def test_local_checkpoints_synthesize_deterministic_24khz_audio(models, offline, tmp_path: Path) -> None:  # noqa: ANN001
    backend = whisperspeech(voice="default", model=str(models["t2s"]), s2a=str(models["s2a"]))
    a, b = backend.synthesize(TEXT), backend.synthesize(TEXT)
    assert backend.sample_rate == 24_000 and a.dtype == np.float32 and a.ndim == 1 and a.size > 0
    np.testing.assert_array_equal(a, b)  # sampling is seeded from the text
    assert np.isfinite(a).all() and a.size % 320 == 0  # whole Vocos hops (320 samples at 24 kHz)
    assert backend.synthesize("  ").size == 0
    v = backend.version
    assert v.startswith("whisperspeech2==2.0.1;vocos==0.1.0;t2s=t2s.model:") and ";s2a=s2a.model:" in v
    # a speaker-embedding file is another speaker: other audio from the same text (one long enough for
    # the speaker to show: the tiny T2S ends its speech at a random token, so some texts give a few frames)
    text = next(t for t in TEXTS if backend.synthesize(t).size >= 0.5 * 24_000)
    emb = tmp_path / "spk.npy"
    np.save(emb, np.random.default_rng(0).normal(0, 10, 192).astype(np.float32))
    other = whisperspeech(voice=str(emb), model=str(models["t2s"]), s2a=str(models["s2a"]))
    assert other.speaker_kind == "embedding" and not np.array_equal(
        other.synthesize(text), backend.synthesize(text)
    )


def test_default_references_load_from_an_offline_hub_cache(models, offline) -> None:  # noqa: ANN001
    """No model fields: the library's own default T2S/S2A references, resolved by huggingface_hub."""
    hub = whisperspeech(voice="classic")
    local = whisperspeech(voice="classic", model=str(models["t2s"]), s2a=str(models["s2a"]))
    np.testing.assert_array_equal(hub.synthesize(TEXT), local.synthesize(TEXT))  # the same weights
    missing = whisperspeech(voice="default", model="collabora/whisperspeech:t2s-not-cached.model")
    with pytest.raises(RuntimeError) as info:
        missing.load()
    msg = str(info.value)
    assert "could not load" in msg and "hf download" in msg and "\n" not in msg


def test_cut_off_speech_is_an_error_not_a_short_clip(models, offline, tmp_path: Path) -> None:  # noqa: ANN001
    never_ends = tf.tiny_t2s(tmp_path / "endless.model", eos_logit=-20.0)
    backend = whisperspeech(voice="default", model=str(never_ends), s2a=str(models["s2a"]))
    with pytest.raises(ValueError, match="T2S hit its 64 token limit .* the audio is cut off"):
        backend.synthesize(TEXT)


def test_whisperspeech_voice_in_a_build(models, offline, tmp_path: Path) -> None:  # noqa: ANN001
    """Audio from the library flows through the build: every sample is spoken, then judged by the filters."""
    import duckdb

    from dataengine.pipeline import build

    voice = {
        "backend": "whisperspeech",
        "voice": "default",
        "model": str(models["t2s"]),
        "s2a": str(models["s2a"]),
    }
    recipe = Recipe.model_validate(
        {
            "name": "ws",
            "seed": 2,
            "limit": 6,
            "source": {"kind": "chatterbot", "categories": ["ai"]},
            "tts": {"voices": [voice]},
            "asr": {"model": "none"},
            # noise from random weights: filters that want speech are relaxed, the others stay
            "audio_filters": {
                "min_duration_s": 0.1,
                "min_hf_energy_db": -200,
                "max_band_edge_db": 200,
                "min_snr_db": -100,
                "min_level_snr_db": 0,
                "min_speech_fraction": 0,
                "min_speech_prob": 0,
                "max_codec_score": 100,
                "max_codec_score_short": 100,
                "max_spectral_hole_ratio": 1,
                "min_hf_dynamics_db": 0,
                "max_silence_fraction": 1,
                "max_edge_silence_s": 100,
            },
        }  # fmt: skip
    )
    summary = build(recipe, tmp_path / "out", progress=False)
    tts = next(s for s in summary.stages if s.name == "tts")
    assert tts.seen == 6 and tts.audio_seconds > 0
    manifest = tmp_path / "out" / "manifest"
    kept = duckdb.sql(f"select voice, duration_s from read_parquet('{manifest}/samples.parquet')").fetchall()
    rejects = duckdb.sql(
        f"select stage, reason, detail from read_parquet('{manifest}/rejects.parquet')"
    ).fetchall()
    name = VoiceConfig(**voice).name
    assert summary.kept >= 1 and all(v == name and d > 0 for v, d in kept)
    for stage, reason, detail in rejects:  # only the library's own cut-off, or a filter's verdict on audio
        assert stage != "tts" or (reason == "error" and "cut off" in detail), (stage, reason, detail)
