"""The drift guard: a seeded share of T2S turns also goes through the audio path, and the two are compared.

The audio path is the one the T2S path replaces: a TTS voice (``t2s.guard.voice``, any backend) speaks the
turn's text, and the recipe's own tokenizer encodes it. The figures (:func:`~dataengine.t2s.drift.compare`)
go into the turn's metrics, hence the manifest; a turn outside the recipe's bounds is rejected
(``t2s_rate_drift``: its length is far from the audio path's; ``t2s_token_drift``: its codes are), and the
build stops when more than ``max_drift_share`` of the guarded turns drift: a T2S release that broke its
tokens (janhq/ichigo #73, #145) stops the build instead of filling a dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dataengine.audio.io import resample
from dataengine.audio.pcm import quantize_pcm16
from dataengine.hashing import unit_draw
from dataengine.recipe import DriftGuardConfig, TokenizerConfig
from dataengine.sample import AUDIO_SAMPLE_RATE, T2S, Turn, Unit
from dataengine.stage import Stage, StageStats
from dataengine.t2s.drift import compare
from dataengine.tts.base import TTSBackend, backend_module, make_backend

if TYPE_CHECKING:
    from dataengine.recipe import Recipe
    from dataengine.tokenizer.whispervq import WhisperVQ


class DriftGuardStage(Stage):
    """Runs the audio path on the drawn T2S turns and measures how far their T2S tokens are from it."""

    name = "t2s_guard"
    origins = (T2S,)
    optional_columns = True
    metrics = (
        "t2s_guard_tokens",
        "t2s_guard_length_ratio",
        "t2s_guard_edit_distance",
        "t2s_guard_histogram_distance",
    )
    reject_reasons = ("t2s_rate_drift", "t2s_token_drift")
    cacheable = True
    reads = ("key", "text", "tokens")
    writes = ()
    packages = ("torch", "numpy", "soxr")

    def __init__(self, config: DriftGuardConfig, tokenizer: TokenizerConfig, seed: int) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.seed = seed
        self.backend: TTSBackend | None = None
        self.vq: WhisperVQ | None = None

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> DriftGuardStage | None:
        if recipe.t2s is None or recipe.t2s.guard.fraction == 0:
            return None
        return cls(recipe.t2s.guard, recipe.tokenizer, recipe.seed)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "backend": None, "vq": None}

    @property
    def code_modules(self) -> tuple[str, ...]:  # type: ignore[override]
        return (
            "dataengine.t2s.drift",
            "dataengine.tokenizer.whispervq",
            "dataengine.tokenizer.whisper_encoder",
            "dataengine.tokenizer.ct2_whisper",
            "dataengine.tokenizer.presets",
            "dataengine.tokenizer.errors",
            "dataengine.tts.base",
            "dataengine.hashing",
            backend_module(self.config.voice.backend),
            "dataengine.audio.io",
            "dataengine.audio.pcm",
        )

    def applies(self, turn: Turn) -> bool:
        return turn.origin == T2S and unit_draw(self.seed, "t2s_guard", turn.key) < self.config.fraction

    def check(self) -> None:
        from dataengine.tokenizer.whispervq import check_whispervq

        make_backend(self.config.voice).check()
        tok = self.tokenizer
        check_whispervq(tok.checkpoint, tok.whisper, device=tok.device, dtype=tok.dtype)

    def setup(self) -> None:
        if self.backend is None:
            backend = make_backend(self.config.voice)
            backend.load()
            self.backend = backend
        if self.vq is None:
            from dataengine.tokenizer.whispervq import load_whispervq

            tok = self.tokenizer
            self.vq = load_whispervq(tok.checkpoint, tok.whisper, device=tok.device, dtype=tok.dtype)

    def process(self, units: list[Unit]) -> None:
        self.setup()
        assert self.backend is not None and self.vq is not None
        for unit in units:
            turn = unit.turn
            try:
                if turn.tokens is None:
                    raise ValueError("T2S turn has no tokens")
                audio = self.backend.synthesize(turn.text)
                if len(audio) == 0:
                    raise ValueError("the guard's TTS voice returned no audio")
                audio = quantize_pcm16(resample(audio, self.backend.sample_rate, AUDIO_SAMPLE_RATE))
                reference = self.vq.encode([audio])[0]
                turn.metrics.update(compare(turn.tokens.astype("int64"), reference, self.vq.vq_codes + 1))
            except Exception as exc:  # noqa: BLE001 - a broken sample must not stop the build
                self.fail(unit, exc)

    def failures(self, unit: Unit) -> list[tuple[str, float]]:
        m, c = unit.turn.metrics, self.config
        found = []
        ratio = m.get("t2s_guard_length_ratio")
        if ratio is not None and not c.min_length_ratio <= ratio <= c.max_length_ratio:
            found.append(("t2s_rate_drift", ratio))
        edit = m.get("t2s_guard_edit_distance", 0.0)
        if edit > c.max_edit_distance:
            found.append(("t2s_token_drift", edit))
        hist = m.get("t2s_guard_histogram_distance", 0.0)
        if hist > c.max_histogram_distance:
            found.append(("t2s_token_drift", hist))
        return found

    def stop_reason(self, stats: StageStats, final: bool) -> str | None:
        """Stop when more than ``max_drift_share`` of the guarded turns drifted (after ``stop_after``)."""
        c = self.config
        if stats.seen == 0 or (stats.seen < c.stop_after and not final):
            return None
        share = stats.dropped / stats.seen
        if share <= c.max_drift_share:
            return None
        return (
            f"the T2S drift guard rejected {stats.dropped} of {stats.seen} guarded turns ({share:.0%}, "
            f"more than t2s.guard.max_drift_share {c.max_drift_share:.0%}): the T2S tokens are not the "
            "audio path's; check t2s.model against tokenizer.checkpoint (see the t2s_guard_* metrics)"
        )

    def model_files(self) -> tuple[Path, ...]:
        from dataengine.tokenizer.whispervq import weight_files

        return weight_files(self.tokenizer.checkpoint, self.tokenizer.whisper)

    def cache_settings(self) -> object:
        """The guard's voice (its backend version) and tokenizer; bounds and the fraction do not decide
        the figures (the fraction decides which turns are measured)."""
        tok = self.tokenizer

        def name(ref: str | None) -> str | None:
            return "local file" if ref is not None and Path(ref).is_file() else ref

        return {
            "voice": self.config.voice,
            "version": make_backend(self.config.voice).version,
            "tokenizer": {
                "checkpoint": name(tok.checkpoint),
                "whisper": name(tok.whisper),
                "device": tok.device,
            },
        }
