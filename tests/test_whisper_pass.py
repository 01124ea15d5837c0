"""One Whisper encoder pass for the tokens and the ASR round trip (``dataengine.tokenizer.whisper_pass``).

Real models: the packaged tiny.en (CTranslate2 for the ASR decoder, converted to PyTorch for the
tokenizer's encoder) and the embedded codebook. Every comparison is between two runs on this machine.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import SPEECH_TEXT, speech

from dataengine.audio.asr import ASRStage, LazyFeatures, WhisperASR, model_dir
from dataengine.cache import StageCache
from dataengine.pipeline import build, build_stages
from dataengine.recipe import ASRConfig, Recipe, SettingError, TokenizerConfig
from dataengine.sample import Sample
from dataengine.stage import StageStats
from dataengine.tokenizer.stage import TokenizerStage
from dataengine.tokenizer.whisper_pass import WhisperPassStage, shared_whisper

ASR_ON = {"model": "tiny.en", "cpu_threads": 1}


@pytest.fixture(scope="module")
def asr() -> WhisperASR:
    model = WhisperASR("tiny.en", cpu_threads=1)
    model.load()
    return model


def _ct2_window_state(asr: WhisperASR, audio: np.ndarray) -> np.ndarray:
    """CTranslate2's own encoder output of faster-whisper's first window of ``audio``."""
    from faster_whisper.audio import pad_or_trim

    model = asr._model
    features = model.feature_extractor(audio)
    window = pad_or_trim(features[:, : features.shape[-1] - 1])
    return np.array(model.encode(window))[0]


def test_decoding_an_encoder_output_is_faster_whispers_transcribe(asr: WhisperASR) -> None:
    """Given the encoder output faster-whisper would compute itself, transcribe_encoded gives exactly
    transcribe's text: the decoding (prompt, suppressed tokens, beam, checks, no-speech skip) is the same,
    so only the encoder behind it differs in the build. Also over 30 s, where later windows are its own."""
    clip = speech()
    long = np.concatenate([clip] * int(np.ceil(31 * 16_000 / len(clip))))[: 33 * 16_000]
    for audio in (clip, clip[: len(clip) // 3], long):
        heard = asr.transcribe(audio)
        assert heard and asr.transcribe_encoded(audio, _ct2_window_state(asr, audio)) == heard
    beam = WhisperASR("tiny.en", cpu_threads=1, beam_size=5)
    short = clip[: len(clip) // 3]
    assert beam.transcribe_encoded(short, _ct2_window_state(asr, short)) == beam.transcribe(short)


def test_lazy_features_have_faster_whispers_shape_and_values(asr: WhisperASR) -> None:
    extractor = asr._model.feature_extractor
    for n in (1_599, 1_600, 1_601, 16_000, 31 * 16_000 + 7):
        audio = speech()[:n] if n <= len(speech()) else np.resize(speech(), n)
        lazy, real = LazyFeatures(extractor, audio), extractor(audio)
        assert lazy.shape == real.shape and np.array_equal(lazy[:, 5:17], real[:, 5:17])


def _samples(clips: list[np.ndarray]) -> list[Sample]:
    return [
        Sample(id=f"s{i}", index=i, prompt=SPEECH_TEXT, response="r", audio=a) for i, a in enumerate(clips)
    ]


def test_tokens_identical_with_and_without_the_shared_pass(asr: WhisperASR) -> None:
    clip = speech()
    clips = [
        clip,
        clip[: len(clip) // 2],
        clip[16_000:40_000],
        np.zeros(16_000, np.float32),
        clip[::-1].copy(),
    ]
    alone, shared = _samples(clips), _samples(clips)
    TokenizerStage(TokenizerConfig(batch_size=4))(alone, StageStats("tokenizer"))
    stage = WhisperPassStage(TokenizerConfig(batch_size=2), ASRConfig(**ASR_ON))
    stage(shared, StageStats("whisper"))
    for a, b in zip(alone, shared, strict=True):
        assert a.kept and b.kept
        assert a.tokens.dtype == b.tokens.dtype == np.int16 and np.array_equal(a.tokens, b.tokens)
        assert a.metrics["n_sound_tokens"] == b.metrics["n_sound_tokens"]
    assert stage.asr.beam_size == 5 and ASRStage(ASRConfig(**ASR_ON)).asr.beam_size == 1  # the defaults
    assert shared[0].metrics["asr_cer"] < 0.1  # the whole sentence, heard from the tokenizer's encoder
    assert shared[4].metrics["asr_cer"] > 0.4  # reversed speech is not the sentence
    assert pickle.loads(pickle.dumps(stage)).model is None
    assert pickle.loads(pickle.dumps(stage)).asr._model is None


def test_stage_list_shares_only_the_same_whisper(tmp_path: Path) -> None:
    names = [s.name for s in build_stages(Recipe(name="t", asr=ASR_ON))]
    assert names[names.index("audio_filters") + 1 :] == ["whisper", "asr", "tokenizer"]
    assert [s.name for s in build_stages(Recipe(name="t"))][-1] == "tokenizer"  # ASR off: no whisper stage
    other = tmp_path / "other-ct2"
    other.mkdir()
    (other / "model.bin").write_bytes(b"not the same Whisper")
    names = [s.name for s in build_stages(Recipe(name="t", asr={"model": str(other)}))]
    assert names[-2:] == ["asr", "tokenizer"] and "whisper" not in names
    # a copy of the same weights is the same Whisper; so is the CT2 folder named on the tokenizer side
    copy = tmp_path / "copy-ct2"
    copy.mkdir()
    (copy / "model.bin").write_bytes((model_dir("tiny.en") / "model.bin").read_bytes())
    assert shared_whisper(ASRConfig(model=str(copy)), TokenizerConfig()) == copy
    assert shared_whisper(ASRConfig(model=str(other)), TokenizerConfig(whisper=str(other))) == other
    assert shared_whisper(ASRConfig(model="tiny.en"), TokenizerConfig(checkpoint="ichigo-v3-7lang")) is None


def test_resources_for_a_stage_that_only_decides_are_refused() -> None:
    recipe = Recipe(name="t", asr=ASR_ON, executor={"stages": {"tokenizer": {"num_gpus": 1}}})
    with pytest.raises(SettingError, match="executor.stages.tokenizer: .* stage .whisper."):
        build_stages(recipe)
    build_stages(Recipe(name="t", asr=ASR_ON, executor={"stages": {"whisper": {"num_gpus": 1}}}))


SMALL_ASR = {
    "name": "small-asr",
    "seed": 11,
    "limit": 10,
    "source": {"kind": "chatterbot", "categories": ["ai", "computers"]},
    "tts": {
        "voices": [
            {"backend": "piper", "voice": "joe-us", "length_scale": 1.0},
            {"backend": "piper", "voice": "joe-us", "length_scale": 0.85},
        ]
    },
    "asr": ASR_ON,
}
"""The shared small build (conftest) with the ASR round trip on. (espeak-ng's robotic voice is where
tiny.en's verdicts are near the limit, with either encoder: see the README.)"""


def _rows(out: Path) -> tuple[dict, dict]:
    import duckdb

    con = duckdb.connect()
    kept = {
        r[0]: r[1:]
        for r in con.execute(
            f"select id, n_sound_tokens, sha256 from '{out}/manifest/samples.parquet'"
        ).fetchall()
    }
    rejects = {
        r[0]: r[1:]
        for r in con.execute(f"select id, stage, reason from '{out}/manifest/rejects.parquet'").fetchall()
    }
    return kept, rejects


@pytest.mark.slow
def test_small_build_same_verdicts_tokens_and_a_rebuild_runs_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = Recipe.model_validate(SMALL_ASR)
    cache = StageCache(tmp_path / "cache")
    shared = build(recipe, tmp_path / "shared", progress=False, cache=cache)
    own = recipe.with_overrides(asr={**ASR_ON, "share_encoder": False})  # two encoder passes, as before
    two = build(own, tmp_path / "two", progress=False, cache=cache)
    assert [s.name for s in shared.stages][-3:] == ["whisper", "asr", "tokenizer"]
    assert [s.name for s in two.stages][-2:] == ["asr", "tokenizer"]
    kept_shared, rejects_shared = _rows(tmp_path / "shared")
    kept_two, rejects_two = _rows(tmp_path / "two")
    # the same samples kept and rejected, for the same stage and reason, with the same tokens
    assert sorted(kept_shared) == sorted(kept_two) and rejects_shared == rejects_two
    assert {k: v[0] for k, v in kept_shared.items()} == {k: v[0] for k, v in kept_two.items()}
    shard_tokens = {}
    for out in ("shared", "two"):
        import webdataset as wds

        urls = sorted(str(p) for p in (tmp_path / out / "shards").glob("*.tar"))
        shard_tokens[out] = {s["__key__"]: s["tokens.npy"] for s in wds.WebDataset(urls, shardshuffle=False)}
    assert shard_tokens["shared"] == shard_tokens["two"]

    def no_model(self) -> None:  # noqa: ANN001
        raise AssertionError("a model loaded on a cached rebuild")

    monkeypatch.setattr(WhisperPassStage, "setup", no_model)
    monkeypatch.setattr(TokenizerStage, "setup", no_model)
    again = build(recipe, tmp_path / "again", progress=False, cache=cache)
    stats = {s.name: (s.seen, s.cached) for s in again.stages}
    assert stats["whisper"][0] == stats["whisper"][1] > 0
    assert _rows(tmp_path / "again") == (kept_shared, rejects_shared)
    # a threshold change re-runs no model either, and the verdicts follow it
    strict = recipe.with_overrides(
        asr={**ASR_ON, "max_cer": 0.01, "max_wer": 0.01},
        tokenizer={"max_sound_tokens": 30},
        text_filters={"length_margin": 10},  # leave the token limit to the tokenizer stage
    )
    judged = build(strict, tmp_path / "strict", progress=False, cache=cache)
    judged_stats = {s.name: (s.seen, s.cached) for s in judged.stages}  # setup() still raises here
    assert judged_stats["whisper"][0] == judged_stats["whisper"][1] == stats["whisper"][0]
    assert judged.rejected["tokenizer/too_many_sound_tokens"] > 0
    assert set(judged.rejected) <= {"asr/asr_mismatch", "tokenizer/too_many_sound_tokens", *again.rejected}
