"""The tokenizer stage: audio -> WhisperVQ sound tokens, dropping samples that exceed the token budget."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np

from dataengine.recipe import TokenizerConfig
from dataengine.sample import Sample
from dataengine.stage import Stage
from dataengine.tokenizer.whispervq import DEFAULT_ASSET, WhisperVQ, check_whispervq, load_whispervq


def _content_id(ref: str | None) -> str | None:
    """A local file by the sha256 of its bytes (so editing it invalidates caches); other refs as given."""
    if ref is None:
        return None
    path = (
        Path(str(resources.files("dataengine") / "assets" / DEFAULT_ASSET)) if ref == "default" else Path(ref)
    )
    if not path.is_file():
        return ref
    return f"{ref}@sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"


class TokenizerStage(Stage):
    """Encodes ``sample.audio`` into ``sample.tokens`` (int16) in batches of ``config.batch_size``."""

    name = "tokenizer"
    cacheable = True
    reads = ("audio",)
    writes = ("tokens",)

    def __init__(self, config: TokenizerConfig) -> None:
        self.config = config
        self.model: WhisperVQ | None = None

    def check(self) -> None:
        cfg = self.config
        check_whispervq(cfg.checkpoint, cfg.whisper, device=cfg.device, dtype=cfg.dtype)

    def setup(self) -> None:
        if self.model is None:
            cfg = self.config
            self.model = load_whispervq(cfg.checkpoint, cfg.whisper, device=cfg.device, dtype=cfg.dtype)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "model": None}  # workers load their own copy in setup()

    def process(self, samples: list[Sample]) -> None:
        self.setup()
        size = self.config.batch_size
        for start in range(0, len(samples), size):
            batch = samples[start : start + size]
            try:
                results = self._encode(batch)
            except Exception:  # noqa: BLE001 - retry one by one so only the broken sample drops
                results = []
                for sample in batch:
                    try:
                        results.extend(self._encode([sample]))
                    except Exception as exc:  # noqa: BLE001 - a broken sample must not stop the build
                        sample.drop(self.name, "error", detail=f"{type(exc).__name__}: {exc}")
                        results.append(None)
            for sample, tokens in zip(batch, results, strict=True):
                if tokens is not None:
                    self._store(sample, tokens)

    def _encode(self, batch: list[Sample]) -> list[np.ndarray]:
        assert self.model is not None
        for sample in batch:
            if sample.audio is None:
                raise ValueError("sample has no audio")
        return self.model.encode([s.audio for s in batch])

    def _store(self, sample: Sample, tokens: np.ndarray) -> None:
        count = len(tokens)
        sample.tokens = tokens.astype(np.int16)
        sample.metrics["n_sound_tokens"] = float(count)

    def judge(self, sample: Sample) -> None:
        judge_token_limit(sample, self.config.max_sound_tokens, self.name)

    def cache_settings(self) -> object:
        """The checkpoint (by content for local files) decides the tokens; limits and batch size do not."""
        return {
            "checkpoint": _content_id(self.config.checkpoint),
            "whisper": _content_id(self.config.whisper),
            "device": self.config.device,  # CUDA kernels and fp16/bf16 may change a near-tie token
            "dtype": self.config.dtype,
        }


def judge_token_limit(sample: Sample, max_sound_tokens: int, stage: str) -> None:
    """Drop ``sample`` as ``too_many_sound_tokens`` (its count) when its tokens exceed the budget."""
    count = 0 if sample.tokens is None else len(sample.tokens)
    if count > max_sound_tokens:
        sample.drop(stage, "too_many_sound_tokens", float(count))


class TokenLimit(Stage):
    """The tokenizer's decision alone (``too_many_sound_tokens``), on tokens an earlier stage computed:
    the shared Whisper pass (:mod:`dataengine.tokenizer.whisper_pass`)."""

    name = "tokenizer"

    def __init__(self, max_sound_tokens: int) -> None:
        self.max_sound_tokens = max_sound_tokens

    def process(self, samples: list[Sample]) -> None:
        """Nothing to compute: the tokens are there."""

    def judge(self, sample: Sample) -> None:
        judge_token_limit(sample, self.max_sound_tokens, self.name)
