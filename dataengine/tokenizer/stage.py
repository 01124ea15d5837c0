"""The tokenizer stage: audio -> WhisperVQ sound tokens, dropping samples that exceed the token budget."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dataengine.recipe import TokenizerConfig
from dataengine.sample import NOISE, RECORDING, TTS, Turn, Unit
from dataengine.stage import Stage

if TYPE_CHECKING:
    from dataengine.tokenizer.whispervq import WhisperVQ


class TokenizerStage(Stage):
    """Encodes a spoken turn's audio (speech, noise, recordings) into its ``tokens`` (int16) in batches
    of ``config.batch_size``; a turn over ``max_sound_tokens`` drops the sample with its count."""

    name = "tokenizer"
    section = "tokenizer"
    config_model = TokenizerConfig
    origins = (TTS, NOISE, RECORDING)
    metrics = ("n_sound_tokens",)
    reject_reasons = ("too_many_sound_tokens",)
    cacheable = True
    reads = ("audio",)
    writes = ("tokens",)

    def __init__(self, config: TokenizerConfig) -> None:
        self.config = config
        self.model: WhisperVQ | None = None

    def check(self) -> None:
        from dataengine.tokenizer.whispervq import check_whispervq

        cfg = self.config
        check_whispervq(cfg.checkpoint, cfg.whisper, device=cfg.device, dtype=cfg.dtype)

    def setup(self) -> None:
        if self.model is None:
            from dataengine.tokenizer.whispervq import load_whispervq  # torch: only where it runs

            cfg = self.config
            self.model = load_whispervq(cfg.checkpoint, cfg.whisper, device=cfg.device, dtype=cfg.dtype)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "model": None}  # workers load their own copy in setup()

    def process(self, units: list[Unit]) -> None:
        self.setup()
        size = self.config.batch_size
        for start in range(0, len(units), size):
            batch = units[start : start + size]
            try:
                results = self._encode(batch)
            except Exception:  # noqa: BLE001 - retry one by one so only the broken sample drops
                results = []
                for unit in batch:
                    try:
                        results.extend(self._encode([unit]))
                    except Exception as exc:  # noqa: BLE001 - a broken sample must not stop the build
                        self.fail(unit, exc)
                        results.append(None)
            for unit, tokens in zip(batch, results, strict=True):
                if tokens is not None:
                    self._store(unit, tokens)

    def decider(self) -> Stage:
        """Its token budget alone, for when the shared Whisper pass computes the tokens."""
        return TokenLimit(self.config)

    def _encode(self, batch: list[Unit]) -> list[np.ndarray]:
        assert self.model is not None
        for unit in batch:
            if unit.turn.audio is None:
                raise ValueError("turn has no audio")
        return self.model.encode([u.turn.audio for u in batch])

    def _store(self, unit: Unit, tokens: np.ndarray) -> None:
        unit.turn.tokens = tokens.astype(np.int16)
        unit.turn.metrics["n_sound_tokens"] = float(len(tokens))

    def failures(self, unit: Unit) -> list[tuple[str, float]]:
        return token_limit_failures(unit.turn, self.config.max_sound_tokens)

    code_modules = (
        "dataengine.tokenizer.whispervq",
        "dataengine.tokenizer.whisper_encoder",
        "dataengine.tokenizer.ct2_whisper",
        "dataengine.tokenizer.presets",
        "dataengine.tokenizer.errors",
    )
    packages = ("torch", "numpy")

    def model_files(self) -> tuple[Path, ...]:
        """The checkpoint and the Whisper weights it runs, by content (so replacing a file invalidates)."""
        from dataengine.tokenizer.whispervq import weight_files  # torch: only where it runs

        return weight_files(self.config.checkpoint, self.config.whisper)

    def cache_settings(self) -> object:
        """The checkpoint and Whisper references (a local file counts by its content only, so moving it
        keeps the entries) and the runtime; limits and batch size do not decide the tokens."""

        def name(ref: str | None) -> str | None:
            return "local file" if ref is not None and Path(ref).is_file() else ref

        return {
            "checkpoint": name(self.config.checkpoint),
            "whisper": name(self.config.whisper),
            "device": self.config.device,  # CUDA kernels and fp16/bf16 may change a near-tie token
            "dtype": self.config.dtype,
        }


def token_limit_failures(turn: Turn, max_sound_tokens: int) -> list[tuple[str, float]]:
    """``[("too_many_sound_tokens", count)]`` when the turn's tokens exceed the budget, else ``[]``."""
    count = 0 if turn.tokens is None else len(turn.tokens)
    return [("too_many_sound_tokens", float(count))] if count > max_sound_tokens else []


class TokenLimit(Stage):
    """The tokenizer's decision alone (``too_many_sound_tokens``) on tokens an earlier stage computed: the
    shared Whisper pass. It keeps :class:`TokenizerStage`'s name, section, turns and reasons."""

    name = TokenizerStage.name
    section = TokenizerStage.section
    config_model = TokenizerConfig
    origins = TokenizerStage.origins
    reject_reasons = TokenizerStage.reject_reasons
    reads = ("tokens",)

    def __init__(self, config: TokenizerConfig) -> None:
        self.config = config

    def process(self, units: list[Unit]) -> None:
        """Nothing to compute: the tokens are on the turn."""

    def failures(self, unit: Unit) -> list[tuple[str, float]]:
        return token_limit_failures(unit.turn, self.config.max_sound_tokens)
