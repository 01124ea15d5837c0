"""The stage protocol: a small, picklable unit of work over batches of samples.

A stage is built from its recipe section, loads its model lazily in :meth:`Stage.setup` (once per
worker process) and maps a batch of samples to the same batch. Executors call only ``setup`` and
``__call__``; they never know what a stage does.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from dataengine.sample import Reject, Sample


@dataclass
class StageStats:
    """What one stage saw: samples in, samples it dropped, seconds spent, audio seconds produced/read."""

    name: str
    seen: int = 0
    dropped: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0

    def merge(self, other: StageStats) -> None:
        self.seen += other.seen
        self.dropped += other.dropped
        self.seconds += other.seconds
        self.audio_seconds += other.audio_seconds


class Stage(ABC):
    """Base class: skips already-rejected samples, times the work, counts drops."""

    name: str = "stage"

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load models or other heavy state. Called once per worker before the first batch."""

    @abstractmethod
    def process(self, samples: list[Sample]) -> None:
        """Work on the live (not yet rejected) samples in place: fill fields or call ``sample.drop``."""

    def __call__(self, samples: list[Sample], stats: StageStats) -> list[Sample]:
        live = [s for s in samples if s.kept]
        start = time.perf_counter()
        if live:
            self.process(live)
        stats.seconds += time.perf_counter() - start
        stats.seen += len(live)
        stats.dropped += sum(1 for s in live if not s.kept)
        stats.audio_seconds += sum(s.duration_s for s in live)
        return samples


class SampleStage(Stage):
    """A stage that handles one sample at a time; an exception becomes a reject row, not a crash."""

    @abstractmethod
    def process_one(self, sample: Sample) -> None:
        """Fill fields of ``sample`` or call ``sample.drop``."""

    def process(self, samples: list[Sample]) -> None:
        for sample in samples:
            try:
                self.process_one(sample)
            except Exception as exc:  # noqa: BLE001 - a broken sample must not stop the build
                sample.reject = Reject(self.name, "error", None, f"{type(exc).__name__}: {exc}")


class FilterStage(SampleStage):
    """A filter measures metrics and decides; every metric lands in ``sample.metrics``."""

    @abstractmethod
    def measure(self, sample: Sample) -> dict[str, float]:
        """Return the metrics this filter computes for one sample."""

    @abstractmethod
    def decide(self, metrics: dict[str, float]) -> tuple[str, float] | None:
        """Return ``(reason, value)`` to reject, or None to keep."""

    def process_one(self, sample: Sample) -> None:
        metrics = self.measure(sample)
        sample.metrics.update(metrics)
        verdict = self.decide(metrics)
        if verdict is not None:
            sample.drop(self.name, verdict[0], verdict[1])
