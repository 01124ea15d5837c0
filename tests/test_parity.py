"""Token parity with whisperspeech itself: our WhisperVQ ids == ``RQBottleneckTransformer.encode_audio``.

The reference side is the real ``whisperspeech`` 0.8.9, ``openai-whisper`` and ``vector-quantize-pytorch``
1.6.22 (installed for tests only, ``requirements-test-nodeps.txt``). ``whisperspeech.vq_stoks`` imports
torchaudio/torio at import time, which cannot be installed beside CPU torch 2.13: a stand-in that only
lets the import succeed (``tests/stubs/torchaudio_standin.py``) is in ``sys.modules`` while it imports.
``encode_audio`` is given tensors, so no torchaudio code would run. whisperspeech 0.8.9's constructor
calls no ``.cuda()`` (checked in its source), so nothing else is patched.

8 kHz input: whisperspeech resamples file input with torchaudio; here both sides get the same 16 kHz
array, resampled by dataengine (soxr), because the two resamplers' outputs differ in the last bits.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_tokenizer import speechlike
from tts_fixtures import offline_hub

from dataengine.audio.io import resample
from dataengine.tokenizer import TokenizerError, load_whispervq
from dataengine.tokenizer.whisper_encoder import load_whisper_encoder, log_mel_spectrogram, mel_filters
from dataengine.tokenizer.whispervq import WhisperVQ

sys.path.insert(0, str(Path(__file__).parent / "stubs"))
from torchaudio_standin import import_vq_stoks  # noqa: E402

_HOW = "test-only: pip install --no-deps -r requirements-test-nodeps.txt (make install)"
for _name in ("whisper", "whisperspeech", "vector_quantize_pytorch", "fastcore", "fastprogress"):
    pytest.importorskip(_name, reason=_HOW)
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

SR = 16_000


@pytest.fixture(scope="module")
def vq_stoks():
    return import_vq_stoks()


def _tiny_whisper(path: Path) -> Path:
    """A random 2-layer openai-whisper model, saved the way ``whisper.load_model(path)`` reads it."""
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(
        n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
        n_vocab=51865, n_text_ctx=8, n_text_state=64, n_text_head=2, n_text_layer=1,
    )  # fmt: skip
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": Whisper(dims).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny-whisper.pt")


def _make_vq(vq_stoks, whisper_name: str, cosine: bool):
    """A tiny ``RQBottleneckTransformer`` built by whisperspeech; the residual MLP made non-trivial."""
    torch.manual_seed(1)
    tunables = vq_stoks.Tunables(mask_embs=cosine, downsample_mean=cosine)
    model = vq_stoks.RQBottleneckTransformer(
        vq_codes=512, q_depth=1, n_head=2, head_width=32, codebook_dim=16 if cosine else 64, downsample=2,
        threshold_ema_dead_code=0, use_cosine_sim=cosine, whisper_model_name=whisper_name, tunables=tunables,
    )  # fmt: skip
    with torch.no_grad():
        for p in model.mlp.parameters():
            p.normal_(0, 0.3)
    return model


# cosine + project_in + mask_embs + mean-pool (the Ichigo / v3-7lang configuration), and Euclidean with
# no projection, no masking and strided downsampling (older checkpoints' tunables)
VARIANTS = {"cosine-ichigo-like": True, "euclidean-plain": False}


@pytest.fixture(scope="module", params=list(VARIANTS))
def pair(request, vq_stoks, tiny_whisper: Path, tmp_path_factory: pytest.TempPathFactory):
    """(whisperspeech's model loaded from its own save_model file, ours loaded from the same file)."""
    path = tmp_path_factory.mktemp("vq") / "vq.model"
    _make_vq(vq_stoks, str(tiny_whisper), VARIANTS[request.param]).save_model(path)
    ref = vq_stoks.RQBottleneckTransformer.load_model(local_filename=str(path))
    ours = load_whispervq(str(path), whisper=str(tiny_whisper))
    return ref, ours


def _clips() -> dict[str, np.ndarray]:
    narrowband = resample(resample(speechlike(2.5, seed=8), SR, 8000), 8000, SR)  # 8 kHz source
    return {
        "1s": speechlike(1.0, seed=1),
        "3.7s": speechlike(3.7, seed=2),
        "12s": speechlike(12.0, seed=3),
        "31s (> 30 s window)": speechlike(31.0, seed=4),
        "silence 2s": np.zeros(2 * SR, np.float32),
        "8 kHz source": narrowband,
    }


def test_tokens_equal_whisperspeech_encode_audio(pair) -> None:
    ref, ours = pair
    clips = _clips()
    with torch.inference_mode():
        expected = {k: ref.encode_audio(torch.from_numpy(v)[None])[0].numpy() for k, v in clips.items()}
    assert len(set(expected["12s"].tolist())) >= 20  # the check is not trivially one repeated code
    n_expected = 750 if ours.mask_embs else None
    assert len(expected["31s (> 30 s window)"]) == 750
    for batch_size in (1, 4, 6):  # batching must not change a single id
        got = ours.encode(list(clips.values()), batch_size=batch_size)
        for (name, want), have in zip(expected.items(), got, strict=True):
            assert have.shape == want.shape, (name, batch_size)
            np.testing.assert_array_equal(have, want, err_msg=f"{name}, batch {batch_size}")
            if n_expected is None:
                assert len(have) == 750  # no mask_embs: the full window, as whisperspeech returns
    if ours.mask_embs:
        assert [len(expected[k]) for k in ("1s", "3.7s", "12s", "silence 2s")] == [25, 92, 300, 50]


def test_encoder_front_end_matches_openai_whisper(tiny_whisper: Path) -> None:
    import whisper
    import whisper.audio

    assets = np.load(Path(whisper.audio.__file__).parent / "assets" / "mel_filters.npz")
    for n_mels in (80, 128):  # bit-identical filterbanks, not merely close
        np.testing.assert_array_equal(mel_filters(n_mels).numpy(), assets[f"mel_{n_mels}"])
    audio = speechlike(4.2, seed=5)
    mel = log_mel_spectrogram(audio)
    np.testing.assert_array_equal(mel.numpy(), whisper.log_mel_spectrogram(torch.from_numpy(audio)).numpy())
    model = whisper.load_model(str(tiny_whisper), device="cpu")
    padded = whisper.pad_or_trim(whisper.log_mel_spectrogram(torch.from_numpy(audio)), 3000)[None]
    with torch.inference_mode():
        want = model.encoder(padded)
        have = load_whisper_encoder(tiny_whisper)(padded)
    torch.testing.assert_close(have, want, rtol=0, atol=1e-5)


def test_vector_quantize_pytorch_conventions(vq_stoks, tiny_whisper: Path) -> None:
    """The key names, codebook shape and cosine normalisation our loader relies on, from the library."""
    model = _make_vq(vq_stoks, str(tiny_whisper), cosine=True)
    state = model.state_dict()
    assert "rq.layers.0.project_in.weight" in state and "rq.project_in.weight" not in state
    assert state["rq.layers.0.project_in.weight"].shape == (16, 64)
    embed = state["rq.layers.0._codebook.embed"]
    assert embed.shape == (1, 513, 16)  # (codebooks, vq_codes + mask code, codebook_dim)
    torch.testing.assert_close(embed.norm(dim=-1), torch.ones(1, 513))  # cosine codebooks are unit rows
    # many random frames through the library's quantizer vs ours: identical ids, including near ties
    ours = WhisperVQ(
        load_whisper_encoder(tiny_whisper), model.__stored_args__,
        dataclasses.asdict(model.tunables), state, source="test",
    )  # fmt: skip
    embs = torch.randn(3, 1500, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        np.testing.assert_array_equal(ours.quantize(embs).numpy(), model.eval().quantize(embs).numpy())


def _hub_cache(home: Path, repo: str, filename: str) -> Path:
    """A hand-made huggingface_hub cache entry (what `hf download` leaves behind); returns the file path."""
    rev = "a" * 40
    repo_dir = home / "hub" / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(rev)
    (repo_dir / "snapshots" / rev).mkdir(parents=True)
    return repo_dir / "snapshots" / rev / filename


def test_official_preset_loads_offline_from_cache(
    vq_stoks, tiny_whisper: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Ichigo preset's reference, served from an offline HF cache, with its Whisper 'medium' by name.

    The checkpoint file is a tiny random stand-in saved under the official name (the real one cannot be
    downloaded here); both whisperspeech's ``load_model(ref)`` and ours resolve it through the same cache.
    """
    home = tmp_path / "hf"
    offline_hub(home, monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    ref = "WhisperSpeech/WhisperSpeech:whisper-vq-stoks-v3-7lang.model"
    target = _hub_cache(home, *ref.split(":"))
    _make_vq(vq_stoks, "medium", cosine=True).save_model(target)

    with pytest.raises(TokenizerError) as info:  # Whisper medium is not in openai-whisper's cache
        load_whispervq("ichigo-v3-7lang")
    msg = str(info.value)
    assert "'medium'" in msg and "not available offline" in msg and "\n" not in msg

    medium = tmp_path / "xdg" / "whisper" / "medium.pt"  # where whisper.load_model('medium') caches it
    medium.parent.mkdir(parents=True)
    medium.write_bytes(tiny_whisper.read_bytes())
    ours = load_whispervq("ichigo-v3-7lang")
    assert (
        ours.source.startswith(f"{ref} (preset ichigo-v3-7lang, sha256:") and "whisper medium" in ours.source
    )
    monkeypatch.setattr(vq_stoks.whisper, "_download", _no_download)
    ref_model = vq_stoks.RQBottleneckTransformer.load_model(ref=ref)
    ref_model.whisper_model_name = str(medium)  # their ensure_whisper() would download by name
    audio = speechlike(2.0, seed=9)
    with torch.inference_mode():
        want = ref_model.encode_audio(torch.from_numpy(audio)[None])[0].numpy()
    np.testing.assert_array_equal(ours.encode([audio])[0], want)


def _no_download(*args: object, **kwargs: object) -> None:
    raise AssertionError("openai-whisper tried to download")
