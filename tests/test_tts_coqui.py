"""Coqui TTS (``coqui-tts`` 0.28) end to end on a tiny randomly initialised VITS built with its own classes.

The model is made with ``Vits.init_from_config`` and saved in Coqui's checkpoint layout (``model.pth`` with
``{"model": state_dict, "config": ...}`` beside ``config.json``), then loaded through the adapter's real
paths: a local folder, and a model name resolved through Coqui's own model cache (``$TTS_HOME/tts``) with
the network off. ``import TTS`` and ``TTS.tts.models.vits`` import torchaudio (and check torchcodec), which
have no working build for CPU torch 2.13: the import-only stand-in (``tests/stubs``) is in place for the
module's tests; VITS inference never calls it (a call would raise).
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tts_fixtures import torchaudio_standin  # the stubs folder on sys.path, as for WhisperSpeech

from dataengine.recipe import Recipe, VoiceConfig
from dataengine.tts.base import make_backend

pytestmark = pytest.mark.skipif(importlib.util.find_spec("TTS") is None, reason="coqui-tts is not installed")
NAME = "tts_models/en/ljspeech/vits"  # a VITS entry of Coqui's model list (its weights are not here)


def _forget_tts() -> None:
    """Later tests must see the product's view again: without torchaudio, TTS does not import."""
    for name in [n for n in sys.modules if n == "TTS" or n.startswith(("TTS.", "trainer"))]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def tiny_vits(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    # an earlier ``import TTS`` in this process (without the stand-in) failed, but left its submodule
    # TTS.utils.import_utils behind with "no torchaudio" in an lru_cache: forget it before importing again
    _forget_tts()
    with torchaudio_standin():
        from TTS.config.shared_configs import BaseAudioConfig
        from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
        from TTS.tts.models.vits import Vits

        torch.manual_seed(0)
        args = VitsArgs(
            hidden_channels=16, hidden_channels_ffn_text_encoder=32, num_layers_text_encoder=1,
            num_layers_posterior_encoder=1, num_layers_flow=1, use_sdp=False, init_discriminator=False,
            resblock_type_decoder="2", resblock_kernel_sizes_decoder=[3],
            resblock_dilation_sizes_decoder=[[1, 3]], upsample_rates_decoder=[8, 8, 4],
            upsample_initial_channel_decoder=32, upsample_kernel_sizes_decoder=[16, 16, 8],
            dropout_p_duration_predictor=0.0,
        )  # fmt: skip
        audio = BaseAudioConfig(sample_rate=16000, win_length=1024, hop_length=256, fft_size=1024)
        config = VitsConfig(model_args=args, audio=audio, use_phonemes=False, text_cleaner="basic_cleaners")
        with warnings.catch_warnings():  # 0.28 deprecates it, but it is what sets up tokenizer and audio
            warnings.simplefilter("ignore", UserWarning)
            model = Vits.init_from_config(config)
        folder = tmp_path_factory.mktemp("coqui") / "tiny-vits"
        folder.mkdir()
        torch.save({"model": model.state_dict(), "config": config.to_dict()}, folder / "model.pth")
        config.save_json(str(folder / "config.json"))
        yield folder
    _forget_tts()


def test_local_checkpoint_synthesizes_through_coqui_and_repeats(tiny_vits: Path) -> None:
    backend = make_backend(VoiceConfig(backend="coqui", model=str(tiny_vits), voice="default"))
    assert backend.kwargs == {} and "model=local:" in backend.version
    first = backend.synthesize("Hello world, this is a test.")
    assert backend.sample_rate == 16000 and first.dtype == np.float32
    assert 0.3 < len(first) / 16000 < 30 and np.isfinite(first).all() and np.abs(first).max() > 0
    again = make_backend(VoiceConfig(backend="coqui", model=str(tiny_vits / "model.pth"), voice="default"))
    assert np.array_equal(again.synthesize("Hello world, this is a test."), first)  # seeded from the text
    longer = backend.synthesize("A much longer sentence takes longer to say, word after word.")
    assert len(longer) > len(first)


def test_model_name_loads_offline_from_coqui_s_model_cache(
    tiny_vits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    cached = tmp_path / "tts" / NAME.replace("/", "--")
    shutil.copytree(tiny_vits, cached)
    monkeypatch.setenv("TTS_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backend = make_backend(VoiceConfig(backend="coqui", model=NAME, voice="default"))
    local = make_backend(VoiceConfig(backend="coqui", model=str(tiny_vits), voice="default"))
    text = "Offline, from the cache."
    assert np.array_equal(backend.synthesize(text), local.synthesize(text))


PERMISSIVE = {  # random weights speak quiet noise: every check that would drop it is opened wide
    "min_speech_fraction": 0.0, "min_speech_prob": 0.0, "max_silence_fraction": 1.0,
    "max_edge_silence_s": 30.0, "min_snr_db": -100.0, "min_level_snr_db": 0.0, "max_band_edge_db": 500.0,
    "max_spectral_hole_ratio": 1.0, "min_hf_energy_db": -500.0, "min_hf_dynamics_db": 0.0,
    "max_codec_score": 1e9, "max_codec_score_short": 1e9, "max_clipping_ratio": 1.0,
}  # fmt: skip


def test_coqui_voice_in_a_build(tiny_vits: Path, tmp_path: Path) -> None:
    import duckdb

    from dataengine.pipeline import build

    recipe = Recipe.model_validate(
        {
            "name": "coqui",
            "limit": 2,
            "source": {"kind": "chatterbot", "categories": ["ai"]},
            "tts": {"voices": [{"backend": "coqui", "model": str(tiny_vits), "voice": "default"}]},
            "audio_filters": PERMISSIVE,
        }
    )
    summary = build(recipe, tmp_path / "out", progress=False)
    manifest = tmp_path / "out" / "manifest"
    kept = duckdb.sql(
        f"select voice, duration_s, n_sound_tokens from read_parquet('{manifest}/samples.parquet')"
    ).fetchall()
    rejected = duckdb.sql(f"select voice, stage from read_parquet('{manifest}/rejects.parquet')").fetchall()
    assert len(kept) + len(rejected) == 2 and summary.kept == len(kept) >= 1, (summary.rejected, rejected)
    assert {v for v, *_ in kept + rejected} == {f"coqui:{tiny_vits}:default@1"}
    assert all(d > 0.3 and n > 0 for _, d, n in kept)  # Coqui's audio reached the tokenizer and the shards
    assert all(stage != "tts" for _, stage in rejected)
