"""Is a stage broken, and what did each stage do: the build's per-stage accounting.

An exception inside a stage on one turn makes its sample an ``error`` reject (one bad sample must not
stop a build), but a stage that raises on many turns is broken, and a build of its rejects is no
dataset. The first traceback of each stage goes to the log as soon as it arrives; the build stops with
one line when a stage's error share (of the spoken turns it worked on) passes ``executor.max_error_rate``.
"""

from __future__ import annotations

import logging
from collections import Counter

from dataengine.executors.local import StageFailed
from dataengine.recipe import ExecutorConfig
from dataengine.stage import Stage, StageStats

log = logging.getLogger(__name__)


def merge_stats(totals: list[StageStats], parts: list[StageStats]) -> None:
    """Add one batch's stats to the build's, logging each stage's first traceback when it first appears."""
    for total, part in zip(totals, parts, strict=True):
        if part.first_error and not total.first_error:
            log.error(
                "stage %s raised on a turn; its sample becomes an 'error' reject (first of this stage):\n%s",
                total.name,
                part.first_error.rstrip(),
            )
        total.merge(part)


def check_error_rate(totals: list[StageStats], config: ExecutorConfig, final: bool = False) -> None:
    """Raise StageFailed when a stage has raised on more than ``config.max_error_rate`` of the spoken
    turns it worked on: once it has seen ``config.error_rate_after`` of them, or at the end of the build
    (``final``)."""
    for stats in totals:
        if not stats.errors or (stats.seen < config.error_rate_after and not final):
            continue
        rate = stats.errors / stats.seen
        if rate > config.max_error_rate:
            last = (stats.first_error or "").strip().splitlines()
            raise StageFailed(
                f"stage {stats.name} raised on {stats.errors} of {stats.seen} turns ({rate:.0%}, more "
                f"than executor.max_error_rate {config.max_error_rate:.0%}): the stage is broken "
                f"(first: {last[-1] if last else 'see the log'}; traceback in the log above)"
            )


def check_stage_bounds(stages: list[Stage], totals: list[StageStats], final: bool = False) -> None:
    """Raise StageFailed when a stage says its totals so far must stop the build (:meth:`Stage.stop_reason`:
    the T2S drift guard's bound, for one)."""
    for stage, stats in zip(stages, totals, strict=True):
        reason = stage.stop_reason(stats, final)
        if reason:
            raise StageFailed(f"stage {stage.name}: {reason}")


def stage_counts(names: list[str], rejected: Counter[str], total: int) -> list[dict[str, object]]:
    """Per step, in order, the samples that reached it alive and those it dropped, by reason: from the
    written reject rows (``stage/reason`` counts), so the numbers are the manifest's and do not depend on
    batching, workers or the cache (``build.json`` is the same for every run of a recipe). ``source``
    comes first (rows it could not read), ``write`` last (duplicate ids, formatting errors)."""
    by_stage: dict[str, dict[str, int]] = {}
    for key, count in rejected.items():
        stage, _, reason = key.partition("/")
        by_stage.setdefault(stage, {})[reason] = count
    steps = ["source", *names, "write"]
    steps += sorted(set(by_stage) - set(steps))
    alive, counts = total, []
    for step in steps:
        dropped = dict(sorted(by_stage.get(step, {}).items()))
        counts.append({"stage": step, "seen": alive, "dropped": dropped})
        alive -= sum(dropped.values())
    return counts
