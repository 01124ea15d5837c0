"""Build a dataset: recipe -> source -> stages (any executor) -> ordered writers (shards, manifest).

The parallel part is a plain list of stages; the ordered part (task mix, formatting, writing) runs
in this process in source order, so the output bytes do not depend on how the work was scheduled.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from dataengine import __version__, numerics
from dataengine.audio.asr import ASR_METRIC_NAMES, ASRStage
from dataengine.audio.filters import AUDIO_METRIC_NAMES, AudioFilter
from dataengine.cache import CachedStage, StageCache
from dataengine.crashpoints import crash_point
from dataengine.executors import LocalExecutor, RayExecutor
from dataengine.formatting import TaskMixer, format_sample
from dataengine.manifest import COMPLETE_MARK
from dataengine.publish.seal import write_build_info
from dataengine.recipe import Recipe, RecipeError
from dataengine.sample import Sample
from dataengine.sources import iter_source
from dataengine.stage import Stage, StageStats
from dataengine.text.filters import TextFilter
from dataengine.tokenizer.stage import TokenizerStage
from dataengine.tts.stage import TTSStage
from dataengine.writers.manifest import ManifestWriter
from dataengine.writers.members import members_digest, sample_members
from dataengine.writers.shards import ShardWriter

log = logging.getLogger(__name__)

BATCH_SIZE = 8
"""Samples per batch when the build has no ``limit`` (and the recipe sets no ``executor.batch_size``)."""
BATCHES_PER_WORKER = 32
OUTPUT_PARTS = ("shards", "manifest", "recipe.yaml", "build.json", "README.md", "plots", "checksums.json")
STAGING = ".partial"
"""The build is written here inside OUT and moved into place only when complete."""
METRIC_NAMES = ["est_sound_tokens", *AUDIO_METRIC_NAMES, *ASR_METRIC_NAMES, "n_sound_tokens"]


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


def build_stages(recipe: Recipe, cache: StageCache | None = None) -> list[Stage]:
    """The per-sample stages, in order; cacheable ones wrapped by ``cache``. Each is picklable and
    loads its model in ``setup``."""
    stages: list[Stage] = [
        TextFilter(recipe.text_filters, recipe.tokenizer.max_sound_tokens),
        TTSStage(recipe.tts, recipe.seed),
        AudioFilter(recipe.audio_filters),
        *([ASRStage(recipe.asr)] if recipe.asr.model != "none" else []),
        TokenizerStage(recipe.tokenizer),
    ]
    if cache is None:
        return stages
    return [CachedStage(stage, cache) if stage.cacheable else stage for stage in stages]


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


def prepare_output(out: Path) -> Path:
    """Check ``out`` holds nothing but a previous build and return a fresh staging folder inside it."""
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out}: exists and is not a folder")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in (*OUTPUT_PARTS, STAGING))
        if foreign:
            raise OutputError(f"{out}: folder holds files that are not a dataengine build ({foreign[0]})")
    staging = out / STAGING
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted build; the cache keeps its finished work
    staging.mkdir(parents=True)
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
    staging.rmdir()


class _Progress:
    """One progress bar per stage plus one for writing; they advance as batches come back."""

    def __init__(self, names: list[str], total: int | None, enabled: bool) -> None:
        self.bars = [
            tqdm(total=total, desc=f"{name:>13}", unit="sample", position=i, disable=not enabled, leave=True)
            for i, name in enumerate(names)
        ]

        self.dropped = [0] * len(names)

    def update(self, batch_size: int, dropped: list[int]) -> None:
        for i, (bar, drops) in enumerate(zip(self.bars, dropped, strict=True)):
            self.dropped[i] += drops
            bar.set_postfix(dropped=self.dropped[i], refresh=False)
            bar.update(batch_size)

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


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
    stages = build_stages(recipe, cache)
    unknown = sorted(set(recipe.executor.stages) - {stage.name for stage in stages})
    if unknown:
        names = ", ".join(stage.name for stage in stages)
        raise RecipeError(f"executor.stages: no stage named {unknown[0]!r} (stages: {names})")
    staging = prepare_output(out)
    executor = executor or LocalExecutor(workers)
    summary = BuildSummary(out=out, stages=[StageStats(s.name) for s in stages])
    shards = ShardWriter(
        staging / "shards", recipe.shards.split, recipe.shards.max_samples, recipe.shards.max_bytes
    )
    manifest = ManifestWriter(staging / "manifest", METRIC_NAMES)
    mixer = TaskMixer(recipe.format.instruction_ratio, recipe.seed)
    seen_ids: set[str] = set()
    bars = _Progress([s.name for s in stages] + ["write"], recipe.limit, progress)

    size = batch_size(recipe, executor.workers)
    log.info("%d worker(s), batches of %d samples", executor.workers, size)
    for batch, batch_stats in executor.map(stages, _batches(iter_source(recipe), size)):
        for total, part in zip(summary.stages, batch_stats, strict=True):
            total.merge(part)
        before = len(manifest.rejects)
        for sample in batch:
            _write_sample(sample, recipe, mixer, shards, manifest, seen_ids, summary)
        bars.update(len(batch), [s.dropped for s in batch_stats] + [len(manifest.rejects) - before])
    bars.close()

    summary.shards = shards.close()
    manifest.close()
    (staging / "recipe.yaml").write_text(recipe.dump_yaml(), encoding="utf-8")
    summary.rejected = Counter(f"{r['stage']}/{r['reason']}" for r in manifest.rejects)
    summary.tasks = Counter(r["task"] for r in manifest.samples)
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
        "numerics": numerics.describe(),
    }
    write_build_info(staging, info)  # the file digests and seal that `verify` checks
    publish_output(staging, out)
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _write_sample(
    sample: Sample,
    recipe: Recipe,
    mixer: TaskMixer,
    shards: ShardWriter,
    manifest: ManifestWriter,
    seen_ids: set[str],
    summary: BuildSummary,
) -> None:
    """The ordered part for one sample: dedupe ids, pick its task, format it, write it (or its reject)."""
    if sample.kept and sample.id in seen_ids:
        sample.drop("write", "duplicate_id", detail=f"id {sample.id} appeared earlier in the source")
    if sample.kept:
        try:
            format_sample(sample, mixer.peek(), recipe.seed)
            members = sample_members(sample, recipe.shards.keep_audio)
            mixer.next_task()  # counted only once the sample is sure to be written
        except Exception as exc:  # noqa: BLE001 - one bad sample must not stop the build
            sample.drop("write", "error", detail=f"{type(exc).__name__}: {exc}")
    if not sample.kept:
        manifest.add_reject(sample)
        return
    seen_ids.add(sample.id)
    shard = shards.add(sample.id, members)
    manifest.add_kept(sample, shard, members_digest(members))
    summary.kept += 1
    summary.audio_seconds += sample.duration_s
