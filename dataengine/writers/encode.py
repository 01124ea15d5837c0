"""The worker half of writing: FLAC-encode each sample's audio member where the stages ran.

FLAC encoding cost ~2.9 ms per 3 s clip on the build machine, in the one ordered process, where it
bounded the whole build; here it runs in the workers, as the last step of every batch. The ordered
part then only formats, hashes (sha256 of a 65 kB member: 0.09 ms) and writes. The executor runs it like
any stage and does not know what it does. It is not a registered stage (no recipe section, metrics or
reject reasons of its own); a failure is a ``write`` reject, as when the writer encoded.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dataengine.sample import ORIGINS, Sample, Unit
from dataengine.stage import Stage, StageStats
from dataengine.writers.members import reject_flac, sample_flac

if TYPE_CHECKING:
    from dataengine.recipe import Recipe


class EncodeMembers(Stage):
    """Sets ``sample.flac``: a kept sample's audio (``shards.keep_audio``), a reject's failing turn
    (``shards.keep_rejected_audio``)."""

    name = "encode"
    origins = ORIGINS

    def __init__(self, keep_audio: bool = True, keep_rejected_audio: bool = True) -> None:
        self.keep_audio = keep_audio
        self.keep_rejected_audio = keep_rejected_audio

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> EncodeMembers:
        return cls(recipe.shards.keep_audio, recipe.shards.keep_rejected_audio)

    def units(self, samples: list[Sample]) -> list[Unit]:
        """One unit per sample whose shard member it encodes (its first turn stands for the sample)."""
        return [
            Unit(sample, 0)
            for sample in samples
            if (self.keep_audio if sample.kept else self.keep_rejected_audio) and sample.turns
        ]

    def process(self, units: list[Unit]) -> None:
        for unit in units:
            sample = unit.sample
            if not sample.kept:
                try:
                    sample.flac = reject_flac(sample)
                except Exception:  # noqa: BLE001 - the writer then encodes (and reports) it itself
                    sample.flac = None
                continue
            try:
                sample.flac = sample_flac(sample)
            except Exception as exc:  # noqa: BLE001 - one bad sample must not stop the build
                sample.drop("write", "error", detail=f"{type(exc).__name__}: {exc}")

    def __call__(self, samples: list[Sample], stats: StageStats) -> list[Sample]:
        units = self.units(samples)
        start = time.perf_counter()
        self.process(units)  # no judging, no drops of its own: its rejects are the writer's
        stats.seconds += time.perf_counter() - start
        stats.seen += len(units)
        stats.audio_seconds += sum(unit.sample.duration_s for unit in units)
        return samples
