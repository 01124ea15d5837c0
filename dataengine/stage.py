"""The stage protocol: a small, picklable unit of work over batches of samples.

A stage is built from its recipe section, loads its model lazily in :meth:`Stage.setup` (once per
worker process) and maps a batch of samples to the same batch. Executors call only ``setup`` and
``__call__``; they never know what a stage does.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from dataengine.errors import one_line
from dataengine.sample import Reject, Sample


class StageError(RuntimeError):
    """A stage that could not set up (a model that will not load, a device that is not there): one line
    naming the stage, raised before any sample is processed."""


@dataclass
class StageStats:
    """What one stage saw: samples in, samples it dropped, seconds spent, audio seconds produced/read."""

    name: str
    seen: int = 0
    dropped: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0
    cached: int = 0
    """Samples whose result came from the cache."""

    def merge(self, other: StageStats) -> None:
        self.cached += other.cached
        self.seen += other.seen
        self.dropped += other.dropped
        self.seconds += other.seconds
        self.audio_seconds += other.audio_seconds


@functools.cache
def source_digest(modules: tuple[str, ...]) -> str:
    """sha256 of the Python source of ``modules`` (a package counts with every ``.py`` file beside it), so
    editing the code that computes a cached result invalidates it."""
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"no source for module {name}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(f"{name}:{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class Stage(ABC):
    """Base class: skips already-rejected samples, times the work, counts drops.

    A stage works in two steps: :meth:`process` computes (TTS, metrics, tokens) and :meth:`judge`
    decides from what was computed (thresholds). Only the first is expensive, so only its results are
    worth caching: a *cacheable* stage declares the sample fields its output depends on (``reads``) and
    the fields it sets (``writes``; metrics it adds are captured too), and :meth:`fingerprint` names
    everything else that decides the output (settings that are not thresholds, model versions).
    """

    name: str = "stage"
    cacheable: bool = False
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    def check(self) -> None:  # noqa: B027 - optional hook
        """Cheap checks of the settings before any work starts (files, voices, devices; no model loads):
        raise ValueError, ImportError or OSError with a one-line message. The build runs every stage's
        check before it touches a sample or the output folder."""

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load models or other heavy state. Called once per worker before the first batch."""

    def start(self) -> None:
        """:meth:`setup`, with a failure turned into :class:`StageError` (what executors call)."""
        try:
            self.setup()
        except StageError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failed model load is one line for the user
            ours = type(exc).__module__.startswith("dataengine.")  # already worded for the user
            reason = one_line(exc) if ours else f"{type(exc).__name__}: {one_line(exc)}"
            raise StageError(f"{self.name}: cannot start: {reason}") from None

    @abstractmethod
    def process(self, samples: list[Sample]) -> None:
        """Work on the live (not yet rejected) samples in place: fill fields or call ``sample.drop``."""

    def judge(self, sample: Sample) -> None:  # noqa: B027 - optional hook
        """Decide on one processed sample (thresholds); runs after :meth:`process` and after a cache hit."""

    def cache_settings(self) -> object:
        """The settings that change what :meth:`process` computes (not thresholds used by ``judge``)."""
        return getattr(self, "config", None)

    code_modules: tuple[str, ...] = ()
    """Modules outside the stage's own package whose code decides its output (for :meth:`fingerprint`)."""

    def fingerprint(self) -> str:
        """Everything besides the sample's ``reads`` that decides :meth:`process`'s output: the stage,
        the source code it runs (its package and ``code_modules``), and :meth:`cache_settings`."""
        package = type(self).__module__.rpartition(".")[0]
        code = source_digest((package, *self.code_modules))
        return f"{type(self).__module__}.{type(self).__qualname__}|code:{code}|{self.cache_settings()!r}"

    def run(self, samples: list[Sample]) -> None:
        """Process, then judge each sample that survived processing."""
        self.process(samples)
        for sample in samples:
            if sample.kept:
                self.judge(sample)

    def __call__(self, samples: list[Sample], stats: StageStats) -> list[Sample]:
        live = [s for s in samples if s.kept]
        start = time.perf_counter()
        if live:
            self.run(live)
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
    """A filter measures metrics (cacheable work) and decides from them (cheap, never cached)."""

    @abstractmethod
    def measure(self, sample: Sample) -> dict[str, float]:
        """Return the metrics this filter computes for one sample."""

    @abstractmethod
    def decide(self, metrics: dict[str, float]) -> tuple[str, float] | None:
        """Return ``(reason, value)`` to reject, or None to keep."""

    def process_one(self, sample: Sample) -> None:
        sample.metrics.update(self.measure(sample))

    def judge(self, sample: Sample) -> None:
        verdict = self.decide(sample.metrics)
        if verdict is not None:
            sample.drop(self.name, verdict[0], verdict[1])
