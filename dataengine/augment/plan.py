"""Which spoken turns are augmented: a seeded draw per turn key, applied to a task's stream of samples.

``replace`` marks the drawn turns of the sample itself; ``beside`` leaves the sample clean and adds a
copy right after it (id ``<id>-aug``) whose drawn turns are marked. Either way the copies are ordinary
samples of the stream, so the writer's exact task pattern takes them like any other.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from dataengine.hashing import unit_draw
from dataengine.recipe import Recipe
from dataengine.sample import RECORDING, TTS, Sample

AUGMENTED_ORIGINS = (TTS, RECORDING)
BESIDE_SUFFIX = "-aug"


def drawn_turns(sample: Sample, seed: int, fraction: float) -> list[int]:
    """Indices of the spoken speech turns drawn for augmentation."""
    return [
        i
        for i, turn in enumerate(sample.turns)
        if turn.origin in AUGMENTED_ORIGINS and unit_draw(seed, "augment-turn", turn.key) < fraction
    ]


def augment_stream(samples: Iterator[Sample], recipe: Recipe, tasks: list[str]) -> Iterator[Sample]:
    """``samples`` with the drawn turns marked (or their marked copies added beside them), for a stream
    serving ``tasks``; unchanged when the recipe has no ``augment`` or lists none of those tasks."""
    config = recipe.augment
    if config is None or (config.tasks is not None and not set(tasks) & set(config.tasks)):
        yield from samples
        return
    for sample in samples:
        drawn = drawn_turns(sample, recipe.seed, config.fraction) if sample.kept else []
        if not drawn:
            yield sample
            continue
        if config.mode == "beside":
            yield sample
            sample = copy.deepcopy(sample)
            sample.id += BESIDE_SUFFIX
        for i in drawn:
            sample.turns[i].augment = True
        yield sample
