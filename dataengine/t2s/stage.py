"""The ``t2s`` stage: a T2S turn's text -> semantic tokens through WhisperSpeech's T2S model, no audio.

This is the path that skips the layers the audio path spends most of its compute on (S2A, the vocoder,
the Whisper encoder): T2S emits ids of the WhisperVQ codebook directly. Before a build starts the
checkpoint's token space is compared with the recipe's tokenizer
(:func:`~dataengine.t2s.model.check_token_space`).
Every output is judged from the tokens alone (the audio filters cannot run without audio): too short or
too long for the text, degenerate repeats, cut off at the model's token limit. The drift guard
(:mod:`dataengine.t2s.guard`) compares a seeded share of turns with the audio path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dataengine.recipe import T2SConfig
from dataengine.sample import T2S, Unit
from dataengine.stage import Stage
from dataengine.t2s.drift import repeat_share, run_share
from dataengine.t2s.model import T2SError, check_token_space, read_t2s, resolve_t2s, turn_seed

if TYPE_CHECKING:
    from dataengine.recipe import Recipe
    from dataengine.t2s.model import T2SModel


class T2SStage(Stage):
    """Fills a T2S turn's ``tokens`` (int16) and ``voice`` (``t2s:<model>``) in batches of
    ``t2s.batch_size``; greedy or seeded sampling (per turn, from the recipe seed and its key)."""

    name = "t2s"
    section = "t2s"
    config_model = T2SConfig
    origins = (T2S,)
    optional_columns = True
    metrics = ("n_sound_tokens", "t2s_tokens_per_char", "t2s_repeat_share", "t2s_run_share", "t2s_cut_off")
    reject_reasons = ("t2s_text_too_long", "t2s_too_short", "t2s_too_long", "t2s_repeats")
    cacheable = True
    reads = ("key", "text")
    writes = ("tokens", "voice")
    code_modules = (
        "dataengine.t2s.model",
        "dataengine.t2s.presets",
        "dataengine.t2s.drift",
        "dataengine.tokenizer.whispervq",  # the device and dtype helpers; the codebook the check reads
        "dataengine.tokenizer.whisper_encoder",
        "dataengine.tokenizer.ct2_whisper",
        "dataengine.tokenizer.presets",
        "dataengine.tokenizer.errors",
    )
    packages = ("torch", "numpy", "whisperspeech2")

    def __init__(self, config: T2SConfig, seed: int, tokenizer: str, max_sound_tokens: int) -> None:
        self.config = config
        self.seed = seed
        self.tokenizer = tokenizer
        self.max_sound_tokens = max_sound_tokens
        self.model: T2SModel | None = None

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> T2SStage | None:
        if recipe.t2s is None:
            return None
        tok = recipe.tokenizer
        return cls(recipe.t2s, recipe.seed, tok.checkpoint, tok.max_sound_tokens)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "model": None}

    def check(self) -> None:
        """The checkpoint is there and readable, whisperspeech2 imports, and its token space is the
        tokenizer's (else one line: the ids would mean other sounds)."""
        from dataengine.t2s.model import _import_t2s

        _import_t2s()
        path = resolve_t2s(self.config.model)
        check_token_space(read_t2s(path, self.config.model), self.config.model, self.tokenizer)

    def setup(self) -> None:
        if self.model is None:
            from dataengine.t2s.model import T2SModel

            cfg = self.config
            self.model = T2SModel(resolve_t2s(cfg.model), cfg.batch_size, cfg.device, cfg.dtype)

    @property
    def voice_name(self) -> str:
        return (
            f"t2s:{Path(self.config.model).name if Path(self.config.model).is_file() else self.config.model}"
        )

    def process(self, units: list[Unit]) -> None:
        self.setup()
        assert self.model is not None
        live = []
        for unit in units:
            size = self.model.text_bytes(unit.turn.text)
            if size > self.model.max_text_bytes:
                unit.drop(
                    self.name,
                    "t2s_text_too_long",
                    float(size),
                    f"T2S reads {self.model.max_text_bytes} bytes",
                )
            else:
                live.append(unit)
        size = self.config.batch_size
        for start in range(0, len(live), size):
            batch = live[start : start + size]
            try:
                results = self._generate(batch)
            except Exception:  # noqa: BLE001 - retry one by one so only the broken turn drops
                results = []
                for unit in batch:
                    try:
                        results += self._generate([unit])
                    except Exception as exc:  # noqa: BLE001 - a broken sample must not stop the build
                        self.fail(unit, exc)
                        results.append(None)
            for unit, generated in zip(batch, results, strict=True):
                if generated is not None:
                    self._store(unit, generated.tokens, generated.cut_off)

    def _generate(self, batch: list[Unit]) -> list:
        assert self.model is not None
        cfg = self.config
        return self.model.generate(
            [u.turn.text for u in batch],
            [turn_seed(self.seed, u.turn.key) for u in batch],
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            cps=cfg.cps,
            language=cfg.language,
        )

    def _store(self, unit: Unit, tokens: np.ndarray, cut_off: bool) -> None:
        turn = unit.turn
        turn.tokens = tokens.astype(np.int16)
        turn.voice = self.voice_name
        chars = max(1, len(turn.text.strip()))
        turn.metrics.update(
            {
                "n_sound_tokens": float(len(tokens)),
                "t2s_tokens_per_char": len(tokens) / chars,
                "t2s_repeat_share": repeat_share(tokens),
                "t2s_run_share": run_share(tokens),
                "t2s_cut_off": float(cut_off),
            }
        )

    def failures(self, unit: Unit) -> list[tuple[str, float]]:
        m, bounds = unit.turn.metrics, self.config.guard
        rate = m.get("t2s_tokens_per_char", 0.0)
        found = []
        if m.get("t2s_cut_off", 0.0) or rate > bounds.max_tokens_per_char:
            found.append(("t2s_too_long", rate))
        if m.get("n_sound_tokens", 0.0) > self.max_sound_tokens:
            found.append(("t2s_too_long", rate))
        if rate < bounds.min_tokens_per_char:
            found.append(("t2s_too_short", rate))
        if m.get("t2s_repeat_share", 0.0) > bounds.max_repeat_share:
            found.append(("t2s_repeats", m["t2s_repeat_share"]))
        elif m.get("t2s_run_share", 0.0) > bounds.max_run_share:
            found.append(("t2s_repeats", m["t2s_run_share"]))
        return found

    def model_files(self) -> tuple[Path, ...]:
        try:
            return (resolve_t2s(self.config.model),)
        except T2SError:
            return ()

    def cache_settings(self) -> object:
        """What decides the tokens: the checkpoint (a local file by content only), sampling, speed,
        language, runtime and the seed; the guard's bounds do not."""
        cfg = self.config
        model = "local file" if Path(cfg.model).is_file() else cfg.model
        return {
            "model": model,
            "seed": self.seed,
            "temperature": cfg.temperature,
            "top_k": cfg.top_k,
            "cps": cfg.cps,
            "language": cfg.language,
            "device": cfg.device,
            "dtype": cfg.dtype,
        }
