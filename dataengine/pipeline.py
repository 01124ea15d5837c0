"""Build a dataset: recipe -> tasks' sources -> stages (any executor) -> ordered writers (shards, manifest).

The parallel part is a plain list of stages (:mod:`dataengine.registry`); the ordered part (task mix,
formatting, writing) runs in this process in each stream's order (:mod:`dataengine.tasks.plan`), so the
output bytes do not depend on how the work was scheduled.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from dataengine import __version__, numerics
from dataengine.cache import StageCache
from dataengine.crashpoints import crash_point
from dataengine.errors import one_line
from dataengine.executors import LocalExecutor, RayExecutor
from dataengine.health import check_error_rate, check_stage_bounds, merge_stats, stage_counts
from dataengine.idset import IdSet
from dataengine.manifest import COMPLETE_MARK
from dataengine.publish.seal import write_build_info
from dataengine.recipe import Recipe, SettingError
from dataengine.registry import build_stages, extra_columns, metric_names
from dataengine.sample import Sample
from dataengine.sources import DUPLICATE_ID, check_source
from dataengine.speaker.drift import VoiceDrift
from dataengine.stage import Stage, StageStats
from dataengine.t2s.report import t2s_report, t2s_rows
from dataengine.tasks import make_tasks
from dataengine.tasks.base import FormatContext, Task
from dataengine.tasks.mixer import MixError
from dataengine.tasks.plan import MixPlan
from dataengine.writers.encode import EncodeMembers
from dataengine.writers.manifest import ManifestWriter
from dataengine.writers.members import members_digest, reject_members, sample_members
from dataengine.writers.shards import ShardWriter
from dataengine.writers.speakers import SpeakerWriter

log = logging.getLogger(__name__)

BATCH_SIZE = 8
"""Samples per batch when the build has no ``limit`` (and the recipe sets no ``executor.batch_size``)."""
BATCHES_PER_WORKER = 32
OUTPUT_PARTS = (
    "shards",
    "rejected",
    "manifest",
    "recipe.yaml",
    "build.json",
    "README.md",
    "plots",
    "examples",
    "checksums.json",
)
STAGING = ".partial"
"""The build is written here inside OUT and moved into place only when complete."""
OWNER_MARK = ".dataengine-build"
"""Written into OUT when a build first claims it and kept there: only a folder holding it (or a build's
``build.json``) is ever replaced, so a folder of the user's own files is never wiped."""
STAGING_MARK = ".dataengine-staging"
"""Inside the staging folder: only a staging folder holding it is removed."""
_OWNER_INFO = {"owner": "dataengine", "note": "written by `dataengine build`, which may replace this folder"}


class OutputError(ValueError):
    """The output folder cannot be used; one line for the user."""


@dataclass
class BuildSummary:
    out: Path
    kept: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    tasks: Counter[str] = field(default_factory=Counter)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    shards: list[str] = field(default_factory=list)
    stages: list[StageStats] = field(default_factory=list)
    """The recipe's stages, in order."""
    encode: StageStats = field(default_factory=lambda: StageStats(EncodeMembers.name))
    """The workers' last step, the FLAC encoding of the audio members (:mod:`dataengine.writers.encode`)."""
    ended: str = ""
    """Why the build stopped taking samples: ``limit``, or the task whose samples ran out."""


__all__ = ["BuildSummary", "OutputError", "batch_size", "build", "build_stages"]


def preflight(recipe: Recipe, stages: list[Stage], out: Path, cache: StageCache | None) -> None:
    """Everything that can be checked before any work starts, cheapest first: the output folder, the
    cache, the recipe's stage names, the source's and each stage's own ``check``. Raises OutputError,
    CacheError or SettingError (one line each); writes nothing outside the cache."""
    check_output(out)
    if cache is not None:
        cache.check()
    unknown = sorted(set(recipe.executor.stages) - {stage.name for stage in stages})
    if unknown:
        names = ", ".join(stage.name for stage in stages)
        raise SettingError("executor.stages", f"no stage named {unknown[0]!r} (stages: {names})")
    _checked("source", lambda: check_source(recipe))
    for stage in stages:
        _checked(stage.name, stage.check)


def _checked(key: str, check: Callable[[], None]) -> None:
    """Run one check; an error that is not yet a SettingError becomes one under ``key``."""
    try:
        check()
    except SettingError:
        raise
    except (ValueError, ImportError, OSError, RuntimeError) as exc:
        raise SettingError(key, one_line(exc)) from None


def batch_size(recipe: Recipe, workers: int) -> int:
    """The recipe's ``executor.batch_size``, else one that gives each worker ~32 batches (1..16): the
    last batch decides when a build ends, and a worker with nothing left to do idles until then (on CPU
    a batch of 2 runs as fast per sample as a batch of 16)."""
    if recipe.executor.batch_size is not None:
        return recipe.executor.batch_size
    if recipe.limit is None:
        return BATCH_SIZE
    return max(1, min(16, recipe.limit // (BATCHES_PER_WORKER * workers)))


def _batches(samples: Iterable[Sample], size: int) -> Iterator[list[Sample]]:
    iterator = iter(samples)
    while batch := list(islice(iterator, size)):
        yield batch


def _is_own_output(out: Path) -> bool:
    """True when ``out`` carries a build's ownership mark, or the completion mark of a build made before
    ownership marks existed (a ``build.json`` this tool wrote: a JSON object naming its version)."""
    if (out / OWNER_MARK).is_file():
        try:
            return json.loads((out / OWNER_MARK).read_text(encoding="utf-8")).get("owner") == "dataengine"
        except (OSError, ValueError, AttributeError):
            return False
    try:
        info = json.loads((out / COMPLETE_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "dataengine_version" in info and "recipe" in info


def _own_staging(staging: Path) -> bool:
    """True when the staging folder is one this tool made (its mark inside), or empty."""
    return (staging / STAGING_MARK).is_file() or not any(staging.iterdir())


def check_output(out: Path) -> None:
    """Refuse, before any work, an ``out`` this build may not use: a file, a folder that holds anything but
    a build this tool marked as its own, a staging folder it did not make, or a place it cannot write.
    Writes nothing."""
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out}: exists and is not a folder")
        entries = sorted(p.name for p in out.iterdir())
        foreign = [name for name in entries if name not in (*OUTPUT_PARTS, STAGING, OWNER_MARK)]
        if foreign:
            raise OutputError(f"{out}: folder holds files that are not a dataengine build ({foreign[0]})")
        if entries and not _is_own_output(out):
            raise OutputError(
                f"{out}: folder is not empty and no dataengine build marked it as its own (no "
                f"{COMPLETE_MARK} or {OWNER_MARK}); nothing was changed: choose an empty or new folder"
            )
        staging = out / STAGING
        if staging.exists() and (not staging.is_dir() or not _own_staging(staging)):
            raise OutputError(
                f"{staging}: not a staging folder made by dataengine (no {STAGING_MARK}); move it away"
            )
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"{out}: cannot be created ({existing} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        raise OutputError(f"{out}: not writable ({existing} is read-only)")


def prepare_output(out: Path) -> Path:
    """Claim ``out`` (checked by :func:`check_output`) and return a fresh staging folder inside it.

    The ownership mark goes in first and stays: it is what lets a later build replace this folder, also
    when a crash left it without ``build.json``. Only a staging folder this tool marked is removed.
    """
    check_output(out)
    staging = out / STAGING
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / OWNER_MARK).is_file():
            tmp = out / f"{OWNER_MARK}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(_OWNER_INFO) + "\n", encoding="utf-8")
            os.replace(tmp, out / OWNER_MARK)
        if staging.exists():
            if (staging / STAGING_MARK).is_file():
                shutil.rmtree(staging)  # left by an interrupted build; the cache keeps its finished work
            else:
                staging.rmdir()  # empty (checked): a build stopped between making it and marking it
        staging.mkdir()
        (staging / STAGING_MARK).write_text(json.dumps(_OWNER_INFO) + "\n", encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(f"{out}: cannot write the build there ({reason})") from None
    return staging


def publish_output(staging: Path, out: Path) -> None:
    """Replace the previous build in ``out`` (including files derived from it, such as a card) with the
    finished one in ``staging``.

    ``build.json`` is the completion mark: removed first, moved in last, so a crash in between leaves a
    folder that readers refuse as incomplete (and the next build replaces), never a mix that looks whole.
    """
    parts = [COMPLETE_MARK, *(name for name in OUTPUT_PARTS if name != COMPLETE_MARK)]
    for name in parts:
        old = out / name
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
        crash_point("publish")
    for name in reversed(parts):
        if (staging / name).exists():
            os.replace(staging / name, out / name)
            crash_point("publish")
    (staging / STAGING_MARK).unlink()
    staging.rmdir()


class _Progress:
    """One progress bar per stage plus one for writing; they advance as batches come back."""

    def __init__(self, names: list[str], total: int | None, enabled: bool) -> None:
        self.bars = [
            tqdm(total=total, desc=f"{name:>13}", unit="sample", position=i, disable=not enabled, leave=True)
            for i, name in enumerate(names)
        ]

        self.dropped = [0] * len(names)

    def update(self, batch_size: int, dropped: list[int], audio_seconds: float = 0.0) -> None:
        for i, (bar, drops) in enumerate(zip(self.bars, dropped, strict=True)):
            self.dropped[i] += drops
            if i == len(self.bars) - 1:  # the write bar: audio kept so far, in hours (real corpora are hours)
                bar.set_postfix(dropped=self.dropped[i], audio_h=f"{audio_seconds / 3600:.3f}", refresh=False)
            else:
                bar.set_postfix(dropped=self.dropped[i], refresh=False)
            bar.update(batch_size)

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


def plan_build(recipe: Recipe) -> MixPlan:
    """The recipe's tasks and their streams, checked before any work starts (one-line SettingError)."""
    tasks = make_tasks(recipe)
    for name, task in tasks.items():
        _checked(f"tasks.{name}", task.preflight)
    try:
        return MixPlan(recipe, tasks)
    except MixError as exc:
        raise SettingError("tasks", str(exc)) from None


def build(
    recipe: Recipe,
    out: Path,
    *,
    workers: int = 1,
    progress: bool = True,
    executor: LocalExecutor | RayExecutor | None = None,
    cache: StageCache | None = None,
) -> BuildSummary:
    """Run the whole build into ``out`` (reusing ``cache`` where it has results); return what happened."""
    started = time.perf_counter()
    steps = build_stages(recipe, cache)
    stages = [*steps, EncodeMembers.from_recipe(recipe)]  # the workers also encode the audio members
    preflight(recipe, stages, out, cache)
    plan = plan_build(recipe)
    staging = prepare_output(out)
    executor = executor or LocalExecutor(workers)
    summary = BuildSummary(out=out, stages=[StageStats(s.name) for s in steps])
    totals = [*summary.stages, summary.encode]  # one per stage the executor runs
    writer = _OrderedWriter(recipe, staging, summary, [s.name for s in stages])
    bars = _Progress([s.name for s in stages] + ["write"], recipe.limit, progress)

    size = batch_size(recipe, executor.workers)
    log.info("%d worker(s), batches of %d samples", executor.workers, size)
    with closing(executor.map(stages, _batches(plan.feed(), size))) as results:  # closed early at the end
        for batch, batch_stats in results:
            merge_stats(totals, batch_stats)
            check_error_rate(totals, recipe.executor)
            check_stage_bounds(stages, totals)
            before = writer.manifest.rejected
            for sample in batch:
                plan.arrive(sample)
            plan.drain(writer.write_kept, writer.write_reject)
            bars.update(
                len(batch),
                [s.dropped for s in batch_stats] + [writer.manifest.rejected - before],
                summary.audio_seconds,
            )
            if plan.done:
                break
        else:
            plan.finish(writer.write_kept, writer.write_reject)
    bars.close()
    check_error_rate(totals, recipe.executor, final=True)
    check_stage_bounds(stages, totals, final=True)
    summary.ended = plan.ended

    summary.shards = writer.shards.close()
    writer.rejected.close()
    writer.manifest.close()
    if writer.speakers is not None:
        writer.speakers.close()
    writer.written.close()
    (staging / "recipe.yaml").write_text(recipe.dump_yaml(), encoding="utf-8")
    summary.rejected = Counter(writer.manifest.reasons)
    summary.tasks = Counter(writer.manifest.tasks)
    info = {
        "dataengine_version": __version__,
        "recipe": recipe.name,
        "seed": recipe.seed,
        "kept": summary.kept,
        "rejected": sum(summary.rejected.values()),
        "audio_seconds": round(summary.audio_seconds, 3),
        "shards": summary.shards,
        "tasks": dict(sorted(summary.tasks.items())),
        "reject_reasons": dict(sorted(summary.rejected.items())),
        # seen and dropped per step (no seconds or cache hits: build.json is the same for every run)
        "stages": stage_counts(
            [s.name for s in steps], summary.rejected, summary.kept + sum(summary.rejected.values())
        ),
        "numerics": numerics.describe(),
        "ended": summary.ended,
    }
    if recipe.t2s is not None:  # only then: the build.json of other recipes stays as it was
        info["t2s"] = t2s_report(recipe, *t2s_rows(staging / "manifest"))  # read back: rows are not kept
    write_build_info(staging, info)  # the file digests and seal that `verify` checks
    publish_output(staging, out)
    summary.wall_seconds = time.perf_counter() - started
    return summary


class _OrderedWriter:
    """The ordered part: format each kept sample as its task, write it (or its reject).

    Each source already rejected its repeated ids; :attr:`written` catches an id that two sources
    share. Both keep their ids on disk (:class:`~dataengine.idset.IdSet`)."""

    def __init__(self, recipe: Recipe, staging: Path, summary: BuildSummary, stage_names: list[str]) -> None:
        self.recipe = recipe
        self.summary = summary
        self.shards = ShardWriter(
            staging / "shards", recipe.shards.split, recipe.shards.max_samples, recipe.shards.max_bytes
        )
        self.rejected = ShardWriter(
            staging / "rejected",
            recipe.shards.split,
            recipe.shards.max_samples,
            recipe.shards.max_bytes,
            unique_keys=True,
        )
        self.manifest = ManifestWriter(
            staging / "manifest", metric_names(stage_names), extra_columns(stage_names)
        )
        self.context = FormatContext(recipe.seed, recipe.tokenizer.max_sound_tokens)
        self.written = IdSet()
        speaker = recipe.speaker
        self.drift = VoiceDrift(speaker) if speaker.enabled else None
        self.speakers = (
            SpeakerWriter(staging / "manifest", speaker.store_embeddings) if speaker.enabled else None
        )

    def write_reject(self, sample: Sample) -> None:
        """The reject's row, with its failing turn's audio in the ``rejected`` shards when the recipe
        keeps it (a duplicate id's audio is the kept sample's: not again)."""
        assert sample.reject is not None
        members = None
        if self.recipe.shards.keep_rejected_audio and not self.rejected.holds(sample.id):
            if sample.reject.reason != DUPLICATE_ID:
                members = reject_members(sample)
        self.manifest.add_reject(sample, self.rejected.add(sample.id, members) if members else None)

    def write_kept(self, sample: Sample, task: Task) -> bool:
        """Write ``sample`` as ``task``; False when it became a reject instead (duplicate id, bad format)."""
        if sample.id in self.written:
            detail = f"id {sample.id} was written earlier, from another source"
            sample.drop("write", DUPLICATE_ID, detail=detail)
        else:
            try:
                task.format(sample, self.context)
                members = sample_members(sample, self.recipe.shards.keep_audio)
            except Exception as exc:  # noqa: BLE001 - one bad sample must not stop the build
                sample.drop("write", "error", detail=f"{type(exc).__name__}: {exc}")
        drifts = self.drift.measure(sample) if self.drift is not None and sample.kept else {}
        failed = self.drift.failing(drifts) if self.drift is not None else None
        if failed is not None:
            turn, distance = failed
            sample.drop(
                "speaker",
                "voice_drift",
                distance,
                f"cosine distance {distance:.3f} to the mean of voice {sample.turns[turn].voice}'s earlier "
                f"turns (max_drift {self.recipe.speaker.max_drift})",
                turn=turn,
            )
        if not sample.kept:
            sample.flac = None  # the worker encoded the kept sample's audio, not its failing turn's
            self.write_reject(sample)
            return False
        self.written.add(sample.id)
        shard = self.shards.add(sample.id, members)
        self.manifest.add_kept(sample, shard, members_digest(members))
        if self.drift is not None and self.speakers is not None:
            self.speakers.add(sample, drifts)
            self.drift.record(sample)
        self.context.record(sample)
        self.summary.kept += 1
        self.summary.audio_seconds += sample.duration_s
        return True
