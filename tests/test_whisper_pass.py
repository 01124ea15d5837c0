"""One Whisper encoder pass for the tokens and the ASR round trip (``dataengine.tokenizer.whisper_pass``).

Real models: the packaged tiny.en (CTranslate2 for the ASR decoder, converted to PyTorch for the
tokenizer's encoder) and the embedded codebook. Every comparison is between two runs on this machine.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import SPEECH_TEXT, speech

from dataengine.audio.asr import ASRStage, ASRVerdict, WhisperASR, model_dir
from dataengine.audio.asr_decoder import LazyFeatures
from dataengine.cache import StageCache
from dataengine.pipeline import build
from dataengine.recipe import ASRConfig, Recipe, SettingError, TokenizerConfig
from dataengine.registry import build_stages
from dataengine.sample import ASSISTANT, NOISE, TTS, USER, Sample, Turn
from dataengine.stage import StageStats
from dataengine.threads import fixed_blas_threads
from dataengine.tokenizer.stage import TokenizerStage, TokenLimit
from dataengine.tokenizer.whisper_pass import WhisperPassStage, shared_whisper

ASR_ON = {"model": "tiny.en", "cpu_threads": 1, "share_encoder": True}


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
    heard = asr.transcribe(long)
    assert heard and asr.transcribe_encoded(long, _ct2_window_state(asr, long)) == heard
    beam = WhisperASR("tiny.en", cpu_threads=1, beam_size=5)
    beam._model = asr._model  # the same loaded weights, another decoding
    short = clip[: len(clip) // 3]
    assert beam.transcribe_encoded(short, _ct2_window_state(asr, short)) == beam.transcribe(short)


def _beam_asr(asr: WhisperASR) -> WhisperASR:
    beam = WhisperASR("tiny.en", cpu_threads=1, beam_size=5)
    beam._model = asr._model  # the same loaded weights, the shared pass's decoding
    return beam


def _clips_and_states(asr: WhisperASR) -> tuple[list[np.ndarray], list[np.ndarray]]:
    clip = speech()
    long = np.concatenate([clip] * int(np.ceil(31 * 16_000 / len(clip))))[: 33 * 16_000]
    quiet = (0.002 * np.random.default_rng(0).standard_normal(16_000)).astype(np.float32)
    clips = [clip, clip[: len(clip) // 3], long, quiet, clip[::-1].copy()]
    return clips, [_ct2_window_state(asr, c) for c in clips]


def test_decoding_clips_in_batches_gives_their_transcripts_one_by_one(asr: WhisperASR) -> None:
    """The first windows of a batch decode in one CTranslate2 call (one over 30 s, whose second window
    faster-whisper decodes itself, and a near-silent one among them): the transcripts are those of
    decoding each clip alone, and the batch was checked against that once."""
    clips, states = _clips_and_states(asr)
    beam = _beam_asr(asr)
    alone = [beam.transcribe_encoded(c, s) for c, s in zip(clips, states, strict=True)]
    assert alone[0] and alone[2]
    batched = _beam_asr(asr)
    assert batched.transcribe_encoded_many(clips, states) == alone
    decoder = batched.encoded_decoder()
    assert decoder.checked and decoder.batch == 2 and decoder.batched_clips == 4  # the fifth: alone
    assert batched.transcribe_encoded_many(clips[::-1], states[::-1]) == alone[::-1]


class _BatchDependent:
    """A CTranslate2 Whisper whose batches come back in the wrong order: a decoder that batches
    unlike it decodes one clip (what the check guards against)."""

    def __init__(self, model: object) -> None:
        self._model = model

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)

    def generate(self, features, prompts, **kwargs):  # type: ignore[no-untyped-def]
        results = self._model.generate(features, prompts, **kwargs)
        return results[::-1] if len(prompts) > 1 else results


def test_a_decoder_that_batches_differently_decodes_one_clip_at_a_time(asr: WhisperASR) -> None:
    clips, states = _clips_and_states(asr)
    clips, states = [clips[0], clips[4], clips[1]], [states[0], states[4], states[1]]
    alone = [_beam_asr(asr).transcribe_encoded(c, s) for c, s in zip(clips, states, strict=True)]
    beam = _beam_asr(asr)
    decoder = beam.encoded_decoder()
    decoder.whisper = copy.copy(decoder.whisper)
    decoder.whisper.model = _BatchDependent(asr._model.model)
    assert beam.transcribe_encoded_many(clips, states) == alone
    assert decoder.checked and decoder.batch == 1 and decoder.batched_clips == 0


def test_lazy_features_have_faster_whispers_shape_and_values(asr: WhisperASR) -> None:
    extractor = asr._model.feature_extractor
    for n in (1_599, 1_600, 1_601, 16_000, 31 * 16_000 + 7):
        audio = speech()[:n] if n <= len(speech()) else np.resize(speech(), n)
        with fixed_blas_threads():  # as LazyFeatures computes them (the rounding depends on the count)
            real = extractor(audio)
        lazy = LazyFeatures(extractor, audio)
        assert lazy.shape == real.shape and np.array_equal(lazy[:, 5:17], real[:, 5:17])


def _samples(clips: list[np.ndarray], origins: list[str] | None = None) -> list[Sample]:
    origins = origins or [TTS] * len(clips)
    return [
        Sample(
            id=f"s{i}",
            index=i,
            turns=[
                Turn(USER, SPEECH_TEXT if origin == TTS else "", origin=origin, key=f"s{i}/0", audio=a),
                Turn(ASSISTANT, "r"),
            ],
        )
        for i, (a, origin) in enumerate(zip(clips, origins, strict=True))
    ]


def test_tokens_identical_with_and_without_the_shared_pass(asr: WhisperASR) -> None:
    clip = speech()
    clips = [clip, np.zeros(16_000, np.float32), clip[::-1].copy()]
    origins = [TTS, NOISE, TTS]  # a noise turn: tokens only, no round trip (it has no text)
    alone, shared = _samples(clips, origins), _samples(clips, origins)
    tokenizer = TokenizerStage(TokenizerConfig(batch_size=4))
    tokenizer(alone, StageStats("tokenizer"))
    stage = WhisperPassStage(TokenizerConfig(batch_size=2), ASRConfig(**ASR_ON))
    stage.model, stage.asr._model = tokenizer.model, asr._model  # loaded once (the beam is the stage's own)
    stage(shared, StageStats("whisper"))
    for a, b in zip(alone, shared, strict=True):
        ta, tb = a.turns[0], b.turns[0]
        assert a.kept and b.kept
        assert ta.tokens.dtype == tb.tokens.dtype == np.int16 and np.array_equal(ta.tokens, tb.tokens)
        assert ta.metrics["n_sound_tokens"] == tb.metrics["n_sound_tokens"]
    assert stage.asr.beam_size == 5 and ASRStage(ASRConfig(model="tiny.en")).asr.beam_size == 1  # defaults
    heard = [s.turns[0] for s in shared]
    assert heard[0].metrics["asr_cer"] < 0.1 and heard[0].transcript  # heard from the tokenizer's encoder
    assert heard[2].metrics["asr_cer"] > 0.4  # reversed speech is not the sentence
    assert heard[1].transcript is None and "asr_cer" not in heard[1].metrics
    assert pickle.loads(pickle.dumps(stage)).model is None
    assert pickle.loads(pickle.dumps(stage)).asr._model is None


def test_a_broken_clip_is_a_whisper_error_and_its_batch_still_runs(asr: WhisperASR) -> None:
    good, broken = _samples([speech()[:32_000], np.zeros(100, np.float32)])  # too short for a mel frame
    stage = WhisperPassStage(TokenizerConfig(batch_size=8), ASRConfig(**ASR_ON))
    stage.asr = asr
    stage([good, broken], StageStats("whisper"))
    assert good.kept and good.turns[0].tokens is not None and "asr_cer" in good.turns[0].metrics
    assert (broken.reject.stage, broken.reject.reason, broken.reject.turn) == ("whisper", "error", 0)
    assert "too short" in broken.reject.detail


def test_the_pass_is_a_recipe_choice_and_shares_only_the_same_whisper(tmp_path: Path) -> None:
    def names(**asr: object) -> list[str]:
        return [type(s).__name__ for s in build_stages(Recipe(name="t", asr=asr))]

    assert names(model="tiny.en")[-2:] == ["ASRStage", "TokenizerStage"]  # the default: two passes, as before
    assert names(**ASR_ON)[-3:] == ["WhisperPassStage", "ASRVerdict", "TokenLimit"]
    assert names(model="none", share_encoder=True)[-1] == "TokenizerStage"  # ASR off: no whisper stage
    other = tmp_path / "other-ct2"
    other.mkdir()
    (other / "model.bin").write_bytes(b"not the same Whisper")
    assert names(**{**ASR_ON, "model": str(other)})[-2:] == ["ASRStage", "TokenizerStage"]
    # a copy of the same weights is the same Whisper; so is the CT2 folder named on the tokenizer side
    copy = tmp_path / "copy-ct2"
    copy.mkdir()
    (copy / "model.bin").write_bytes((model_dir("tiny.en") / "model.bin").read_bytes())
    assert shared_whisper(ASRConfig(model=str(copy), share_encoder=True), TokenizerConfig()) == copy
    assert shared_whisper(ASRConfig(model=str(copy)), TokenizerConfig()) is None  # sharing is asked for
    mine = ASRConfig(model=str(other), share_encoder=True)
    assert shared_whisper(mine, TokenizerConfig(whisper=str(other))) == other
    assert shared_whisper(ASRConfig(**ASR_ON), TokenizerConfig(checkpoint="ichigo-v3-7lang")) is None
    # the cache knows such a folder by its weights: other bytes, other key
    stage = WhisperPassStage(TokenizerConfig(whisper=str(other)), mine)
    before = stage.fingerprint()
    (other / "model.bin").write_bytes(b"retrained")
    assert WhisperPassStage(TokenizerConfig(whisper=str(other)), mine).fingerprint() != before
    # the decoder beam is part of the key; thresholds are not
    base = WhisperPassStage(TokenizerConfig(), ASRConfig(**ASR_ON)).fingerprint()
    assert WhisperPassStage(TokenizerConfig(), ASRConfig(**ASR_ON, beam_size=1)).fingerprint() != base
    loose = WhisperPassStage(TokenizerConfig(max_sound_tokens=9), ASRConfig(**ASR_ON, max_cer=0.9))
    assert loose.fingerprint() == base


def test_resources_for_a_stage_that_only_decides_are_refused() -> None:
    recipe = Recipe(name="t", asr=ASR_ON, executor={"stages": {"tokenizer": {"num_gpus": 1}}})
    with pytest.raises(SettingError, match="executor.stages.tokenizer: .* stage .whisper."):
        build_stages(recipe)
    build_stages(Recipe(name="t", asr=ASR_ON, executor={"stages": {"whisper": {"num_gpus": 1}}}))


SHARED_BUILD = {
    "name": "small-shared",
    "seed": 11,
    "limit": 4,
    "source": {"kind": "chatterbot", "categories": ["ai", "computers"]},
    "tts": {"voices": [{"backend": "piper", "voice": "joe-us", "length_scale": 1.0}]},
    "asr": ASR_ON,
}


@pytest.mark.slow
def test_a_build_with_the_shared_pass_and_a_rebuild_that_runs_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = Recipe.model_validate(SHARED_BUILD)
    cache = StageCache(tmp_path / "cache")
    first = build(recipe, tmp_path / "first", progress=False, cache=cache)
    assert [s.name for s in first.stages][-3:] == ["whisper", "asr", "tokenizer"]
    manifest = (tmp_path / "first" / "manifest").glob("*")
    assert first.kept > 0 and any(manifest)

    def no_model(self) -> None:  # noqa: ANN001
        raise AssertionError("a model loaded on a cached rebuild")

    monkeypatch.setattr(WhisperPassStage, "setup", no_model)
    monkeypatch.setattr(TokenizerStage, "setup", no_model)
    again = build(recipe, tmp_path / "again", progress=False, cache=cache)
    stats = {s.name: (s.seen, s.cached) for s in again.stages}
    assert stats["whisper"][0] == stats["whisper"][1] > 0
    for part in ("manifest", "shards"):  # the same bytes from the cache
        for a in sorted((tmp_path / "first" / part).rglob("*")):
            b = tmp_path / "again" / a.relative_to(tmp_path / "first")
            assert a.is_dir() or a.read_bytes() == b.read_bytes(), b
    # a threshold change re-runs no model either, and the verdicts follow it
    strict = recipe.with_overrides(
        asr={**ASR_ON, "max_cer": 0.0, "max_wer": 0.0}, tokenizer={"max_sound_tokens": 20},
        text_filters={"length_margin": 10},  # leave the token limit to the tokenizer stage
    )  # fmt: skip
    judged = build(strict, tmp_path / "strict", progress=False, cache=cache)
    judged_stats = {s.name: (s.seen, s.cached) for s in judged.stages}  # setup() still raises here
    assert judged_stats["whisper"][0] == judged_stats["whisper"][1] == stats["whisper"][0]
    assert judged.kept < first.kept
    assert set(judged.rejected) <= {"asr/asr_mismatch", "tokenizer/too_many_sound_tokens", *first.rejected}
    *_, verdict, limit = build_stages(strict)
    assert isinstance(verdict, ASRVerdict) and isinstance(limit, TokenLimit)
