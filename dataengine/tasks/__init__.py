"""Tasks: the kinds of training sample a build mixes (``tasks:`` in a recipe), one module each.

Register a new one in :data:`TASKS` (its settings are the recipe's ``tasks.<name>`` section).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataengine.recipe import Recipe
    from dataengine.tasks.base import Task

TASKS: dict[str, str] = {
    "instruction": "dataengine.tasks.instruction:InstructionTask",
    "transcription": "dataengine.tasks.transcription:TranscriptionTask",
    "noise_refusal": "dataengine.tasks.noise_refusal:NoiseRefusalTask",
    "multi_turn": "dataengine.tasks.multi_turn:MultiTurnTask",
    "text_only": "dataengine.tasks.text_only:TextOnlyTask",
    "pretrain": "dataengine.tasks.pretrain:PretrainTask",
}
"""Task name (the key under ``tasks:``) -> ``module:Class``."""


def task_class(name: str) -> type[Task]:
    module, _, attr = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def make_tasks(recipe: Recipe) -> dict[str, Task]:
    """The recipe's tasks (in :data:`TASKS` order), each built from its section."""
    return {name: task_class(name)(config, recipe) for name, config in recipe.tasks.enabled().items()}


def task_origins(recipe: Recipe) -> tuple[str, ...]:
    """The spoken-turn origins the recipe's tasks make."""
    from dataengine.sample import T2S, TTS

    found: list[str] = []
    for task in make_tasks(recipe).values():
        origins = list(task.spoken_origins())
        tokens = getattr(task.config, "tokens", "audio")
        if TTS in origins and (tokens == "t2s" or recipe.tts.t2s_share > 0):
            if tokens == "t2s" or recipe.tts.t2s_share == 1:
                origins.remove(TTS)  # every spoken turn of the task is T2S
            origins.append(T2S)
        found += [o for o in origins if o not in found]
    return tuple(found)
