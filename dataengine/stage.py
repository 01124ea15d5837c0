"""The stage protocol: a small, picklable unit of work over batches of samples.

A stage is built from its recipe section, loads its model lazily in :meth:`Stage.setup` (once per
worker process) and maps a batch of samples to the same batch. It works on the spoken turns whose
origin it handles (:class:`~dataengine.sample.Unit`); a turn it rejects rejects the whole sample.
Executors call only ``setup`` and ``__call__``; they never know what a stage does.

A stage declares what the rest of the system derives from it (see :mod:`dataengine.registry`): its
recipe section, the origins it handles, the metrics it writes, its reject reasons and the turn fields
it reads and writes.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dataengine.errors import one_line
from dataengine.fingerprint import file_digest, numerics_key, package_versions
from dataengine.sample import RECORDING, TTS, Sample, Turn, Unit

if TYPE_CHECKING:
    from dataengine.recipe import Recipe


class StageError(RuntimeError):
    """A stage that could not set up (a model that will not load, a device that is not there): one line
    naming the stage, raised before any sample is processed."""


@dataclass
class StageStats:
    """What one stage saw: spoken turns it worked on, samples it dropped, seconds spent, audio seconds
    produced/read."""

    name: str
    seen: int = 0
    dropped: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0
    cached: int = 0
    """Turns whose result came from the cache."""
    errors: int = 0
    """Samples dropped because the stage raised on one of their turns (reason ``error``)."""
    first_error: str | None = None
    """The traceback of the first of those, for the log."""

    def merge(self, other: StageStats) -> None:
        self.cached += other.cached
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error
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


_first_errors: dict[str, str] = {}
"""Stage name -> the first traceback :meth:`Stage.fail` saw in this process and has not yet reported."""


class Stage(ABC):
    """Base class: picks the live spoken turns it handles, times the work, counts drops.

    A stage works in two steps: :meth:`process` computes (TTS, metrics, tokens) and :meth:`judge`
    decides from what was computed (thresholds, through :meth:`failures`). Only the first is expensive,
    so only its results are worth caching: a *cacheable* stage declares the turn fields its output
    depends on (``reads``) and the fields it sets (``writes``; metrics it adds are captured too), and
    :meth:`fingerprint` names everything else that decides the output (settings that are not
    thresholds, model versions).
    """

    name: str = "stage"
    section: str | None = None
    """The recipe key of its settings (a pydantic model, :attr:`config_model`)."""
    config_model: type | None = None
    origins: tuple[str, ...] = (TTS,)
    """The turn origins it works on (:data:`~dataengine.sample.ORIGINS`)."""
    metrics: tuple[str, ...] = ()
    """Metric keys it writes into ``turn.metrics`` (one manifest column each)."""
    reject_reasons: tuple[str, ...] = ()
    optional_columns: bool = False
    """True: its metrics get manifest columns only in builds that run it (a stage most recipes leave out,
    so their manifests stay as they were)."""
    cacheable: bool = False
    reads: tuple[str, ...] = ()
    """Turn fields its output depends on (also checked against earlier stages' ``writes``)."""
    writes: tuple[str, ...] = ()
    measures_for: tuple[str, ...] = ()
    """Names of later stages whose measuring this one does as well (their :meth:`decider` then replaces
    them, so their reject reasons and columns stay theirs): the shared Whisper pass measures for ``asr``
    and ``tokenizer``."""
    columns: dict[str, str] = {}
    """Manifest columns besides the metrics: name -> kind (``string``: ``turn.labels[name]``; ``int16[]``:
    the turn field of that name, a token array); like the metrics, only in builds that run the stage
    when :attr:`optional_columns` is set."""

    def check(self) -> None:  # noqa: B027 - optional hook
        """Cheap checks of the settings before any work starts (files, voices, devices; no model loads):
        raise ValueError, ImportError or OSError with a one-line message. The build runs every stage's
        check before it touches a sample or the output folder."""

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> Stage | None:
        """The stage configured from its recipe section; None when the recipe switches it off."""
        return cls(recipe.section(cls.section)) if cls.section else cls()

    def decider(self) -> Stage:
        """This stage's decision alone, on what an earlier stage that :attr:`measures_for` it measured."""
        raise ValueError(f"stage {self.name!r} cannot leave its measuring to another stage")

    def applies(self, turn: Turn) -> bool:
        """Whether this stage works on ``turn`` (by default: its origin is one of :attr:`origins`)."""
        return turn.origin in self.origins

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
    def process(self, units: list[Unit]) -> None:
        """Work on the live turns in place: fill fields or call ``unit.drop``."""

    def failures(self, unit: Unit) -> list[tuple[str, float]]:
        """Every ``(reason, value)`` the processed turn fails, first the one the build records."""
        return []

    def judge(self, unit: Unit) -> None:
        """Decide on one processed turn (thresholds); runs after :meth:`process` and after a cache hit."""
        failed = self.failures(unit)
        if failed:
            unit.drop(self.name, failed[0][0], failed[0][1])

    def stop_reason(self, stats: StageStats, final: bool) -> str | None:
        """Why the build must stop, from this stage's totals so far (``final``: at the build's end), or
        None. Default: never (the executor's error-rate bound applies to every stage anyway)."""
        return None

    def cache_settings(self) -> object:
        """The settings that change what :meth:`process` computes (not thresholds used by ``judge``)."""
        return getattr(self, "config", None)

    code_modules: tuple[str, ...] = ()
    """Modules besides the stage's own whose code decides its output (a package name: all its files)."""
    packages: tuple[str, ...] = ()
    """Installed distributions whose version decides its output (``ctranslate2``, ``onnxruntime``, …)."""

    def model_files(self) -> tuple[Path, ...]:
        """Files whose bytes decide its output (model weights, codebooks): keyed by their content."""
        return ()

    def dependencies(self) -> dict[str, object]:
        """Everything besides the turn's ``reads`` that decides :meth:`process`'s output, by kind: the
        stage class, the source of its module and :attr:`code_modules`, the versions of
        :attr:`packages`, the content of :meth:`model_files`, the CPU numerics and :meth:`cache_settings`."""
        cls = type(self)
        return {
            "stage": f"{cls.__module__}.{cls.__qualname__}",
            "code": source_digest((cls.__module__, *self.code_modules)),
            "packages": package_versions(tuple(self.packages)),
            "files": [file_digest(path) for path in self.model_files()],  # by content, not by name
            "numerics": numerics_key(),
            "settings": self.cache_settings(),
        }

    def fingerprint(self) -> str:
        """:meth:`dependencies` as one string: the part of every cache key that is not the turn's."""
        return "|".join(f"{kind}:{value!r}" for kind, value in self.dependencies().items())

    def units(self, samples: list[Sample]) -> list[Unit]:
        """The live samples' turns this stage works on, in order."""
        return [
            Unit(sample, i)
            for sample in samples
            if sample.kept
            for i, turn in enumerate(sample.turns)
            if self.applies(turn)
        ]

    def run(self, units: list[Unit]) -> None:
        """Process, then judge each turn whose sample survived processing."""
        self.process(units)
        for unit in units:
            if unit.kept:
                self.judge(unit)

    def fail(self, unit: Unit, exc: Exception) -> None:
        """Make ``unit``'s sample an ``error`` reject of this stage at its turn; call it in an ``except``
        block (the first traceback of each stage is kept for the build's log)."""
        unit.drop(self.name, "error", None, f"{type(exc).__name__}: {exc}")
        where = f"sample {unit.sample.id} turn {unit.index}"
        _first_errors.setdefault(self.name, f"{where}: {traceback.format_exc()}")

    def __call__(self, samples: list[Sample], stats: StageStats) -> list[Sample]:
        units = self.units(samples)
        live = {id(u.sample): u.sample for u in units}
        start = time.perf_counter()
        if units:
            self.run(units)
        stats.seconds += time.perf_counter() - start
        stats.seen += len(units)
        stats.dropped += sum(1 for s in live.values() if not s.kept)
        stats.errors += sum(
            1 for s in live.values() if s.reject and (s.reject.stage, s.reject.reason) == (self.name, "error")
        )
        stats.first_error = stats.first_error or _first_errors.pop(self.name, None)
        stats.audio_seconds += sum(u.turn.duration_s for u in units)
        return samples


class TurnStage(Stage):
    """A stage that handles one turn at a time; an exception becomes a reject row, not a crash."""

    @abstractmethod
    def process_turn(self, unit: Unit) -> None:
        """Fill fields of ``unit.turn`` or call ``unit.drop``."""

    def process(self, units: list[Unit]) -> None:
        for unit in units:
            if not unit.kept:  # an earlier turn of the same sample failed
                continue
            try:
                self.process_turn(unit)
            except Exception as exc:  # noqa: BLE001 - a broken sample must not stop the build
                self.fail(unit, exc)


class FilterStage(TurnStage):
    """A filter measures metrics (cacheable work) and decides from them (cheap, never cached)."""

    origins = (TTS, RECORDING)

    @abstractmethod
    def measure(self, unit: Unit) -> dict[str, float]:
        """Return the metrics this filter computes for one turn."""

    @abstractmethod
    def decide(self, metrics: dict[str, float]) -> tuple[str, float] | None:
        """Return ``(reason, value)`` to reject, or None to keep."""

    def process_turn(self, unit: Unit) -> None:
        unit.turn.metrics.update(self.measure(unit))

    def failures(self, unit: Unit) -> list[tuple[str, float]]:
        verdict = self.decide(unit.turn.metrics)
        return [] if verdict is None else [verdict]
