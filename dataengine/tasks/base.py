"""The task interface: where a task's samples come from, which turns are spoken, how it is formatted.

A task turns source rows (or nothing: generated samples) into a *stream* of prepared samples, marking
which turns are spoken and from what origin; stages then fill the spoken turns; the ordered writer
finally calls :meth:`Task.format` on each kept sample it assigns to the task. Tasks whose preparation
is the same (same source, same settings) share one stream, and the writer decides which of them each
kept sample becomes, exactly as the mix asks (instruction and transcription both speak a prompt).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dataengine.hashing import unit_draw
from dataengine.recipe import Recipe
from dataengine.sample import RECORDING, T2S, TTS, Sample


@dataclass
class FormatContext:
    """What formatting may look at besides the sample: the seed, and the sound-token lengths of the real
    spoken prompts written so far (a bounded histogram, in writing order, so it is deterministic)."""

    seed: int
    max_sound_tokens: int
    lengths: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = np.zeros(self.max_sound_tokens + 1, dtype=np.int64)

    def record(self, sample: Sample) -> None:
        """Count the spoken prompts (TTS turns and recordings) of a written sample."""
        for turn in sample.turns:
            if turn.origin in (TTS, RECORDING, T2S) and turn.tokens is not None:
                self.lengths[min(len(turn.tokens), self.max_sound_tokens)] += 1

    def draw_length(self, fallback: tuple[int, int], *parts: object) -> int:
        """A length drawn from the histogram (seeded by ``parts``); ``fallback`` (low, high) before any
        spoken prompt was written."""
        total = int(self.lengths.sum())
        u = unit_draw(self.seed, "length", *parts)
        if total == 0:
            low, high = fallback
            return low + int(u * (high - low + 1))
        return int(np.searchsorted(np.cumsum(self.lengths), u * total, side="right"))


class Task(ABC):
    """One kind of training sample, configured from its ``tasks.<name>`` section."""

    name: str = "task"
    generates: bool = False
    """True when the task makes its own samples (no source rows)."""
    origins: tuple[str, ...] = (TTS,)
    """The origins of the spoken turns it makes."""

    def __init__(self, config: Any, recipe: Recipe) -> None:
        self.config = config
        self.recipe = recipe

    @property
    def share(self) -> float:
        return float(self.config.share)

    def spoken_origins(self) -> tuple[str, ...]:
        """The origins this task's spoken turns have with its source (a recordings source: ``recording``)."""
        return self.origins

    @property
    def source(self) -> Any:
        """The source config its rows come from (the recipe's default when the task names none)."""
        return getattr(self.config, "source", None) or self.recipe.source

    def preparation(self) -> str:
        """What :meth:`samples` does to rows, as text: tasks with equal preparation and source share one
        stream of samples (each kept sample then becomes one of them)."""
        return self.name

    def spoken_origin(self, key: str) -> str:
        """The origin of a spoken turn this task makes: T2S when the task's ``tokens`` is ``t2s``, or when
        the turn's seeded draw lands on the voice pool's ``backend: t2s`` entries (by weight); else TTS."""
        if getattr(self.config, "tokens", "audio") == "t2s":
            return T2S
        share = self.recipe.tts.t2s_share
        return T2S if share > 0 and unit_draw(self.recipe.seed, "t2s", key) < share else TTS

    def stream_key(self) -> str:
        source = "" if self.generates else json.dumps(self.source.model_dump(mode="json"), sort_keys=True)
        return f"{self.preparation()}|{source}"

    def preflight(self) -> None:  # noqa: B027 - optional hook
        """Raise SettingError (or ValueError, OSError) for what can be checked before any work starts."""

    @abstractmethod
    def samples(self, rows: Iterator[Sample] | None) -> Iterator[Sample]:
        """Prepared samples from ``rows`` (None for a task that :attr:`generates`), rejects included, in
        a deterministic order."""

    def format(self, sample: Sample, context: FormatContext) -> None:
        """Make a kept sample this task's: set ``task`` and whatever its layout changes."""
        sample.task = self.name
