"""The noise stage: the audio of each noise turn, a seeded clip of the kind the task drew for it."""

from __future__ import annotations

import math

from dataengine.hashing import unit_draw
from dataengine.noise.clips import make_clip
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

    def __init__(self, config: NoiseRefusalTask, seed: int) -> None:
        self.config = config
        self.seed = seed

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> NoiseStage | None:
        config = recipe.tasks.noise_refusal
        return cls(config, recipe.seed) if config is not None else None

    def process_turn(self, unit: Unit) -> None:
        turn = unit.turn
        kind = (turn.voice or "").removeprefix("noise:")
        turn.audio = make_clip(kind, clip_seconds(self.config, self.seed, turn.key), self.seed, turn.key)
