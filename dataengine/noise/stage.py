"""The noise stage: the audio of each noise turn, a seeded clip of the kind the task drew for it."""

from __future__ import annotations

import math
from pathlib import Path

from dataengine.hashing import unit_draw
from dataengine.noise.clips import RECORDED, make_clip, split_recordings
from dataengine.recipe import NoiseRefusalTask, Recipe
from dataengine.sample import NOISE, Unit
from dataengine.stage import TurnStage


def clip_seconds(config: NoiseRefusalTask, seed: int, key: str) -> float:
    """Log-uniform between ``min_s`` and ``max_s``: mostly short clips, some long."""
    low, high = math.log(config.min_s), math.log(config.max_s)
    return math.exp(low + (high - low) * unit_draw(seed, "noise-seconds", key))


class NoiseStage(TurnStage):
    """Fills a noise turn's ``audio`` from its kind (``voice`` = ``noise:<kind>``) and key; TTS and the
    speech filters never see these turns, the tokenizer does."""

    name = "noise"
    origins = (NOISE,)
    reads = ("key", "voice")
    writes = ("audio",)

    def __init__(self, config: NoiseRefusalTask, seed: int, background_share: float | None = None) -> None:
        self.config = config
        self.seed = seed
        self.background_share = background_share
        """Set when ``augment.noise`` holds recordings back for backgrounds: only the rest are used here."""

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> NoiseStage | None:
        config = recipe.tasks.noise_refusal
        if config is None:
            return None
        background = recipe.augment.noise if recipe.augment is not None else None
        return cls(config, recipe.seed, background.background_share if background is not None else None)

    def files(self, kind: str) -> tuple[Path, ...] | None:
        """The recordings a clip of ``kind`` draws from (None: all of them, or a synthetic kind)."""
        if self.background_share is None or kind not in RECORDED:
            return None
        return split_recordings(kind, self.seed, self.background_share)[0]

    def process_turn(self, unit: Unit) -> None:
        turn = unit.turn
        kind = (turn.voice or "").removeprefix("noise:")
        seconds = clip_seconds(self.config, self.seed, turn.key)
        turn.audio = make_clip(kind, seconds, self.seed, turn.key, files=self.files(kind))
