"""Run stages in this process (1 worker) or in a pool of worker processes, results in input order."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterable, Iterator

from dataengine.sample import Sample
from dataengine.stage import Stage, StageStats

BatchResult = tuple[list[Sample], list[StageStats]]

_worker_stages: list[Stage] = []


def run_batch(stages: list[Stage], batch: list[Sample]) -> BatchResult:
    """Push one batch through every stage in order; return it with each stage's stats for it."""
    stats = [StageStats(stage.name) for stage in stages]
    for stage, stage_stats in zip(stages, stats, strict=True):
        batch = stage(batch, stage_stats)
    return batch, stats


def _init_worker(stages: list[Stage], threads: int) -> None:
    global _worker_stages
    limit_threads(threads)
    _worker_stages = stages
    for stage in _worker_stages:
        stage.setup()


def _run_in_worker(batch: list[Sample]) -> BatchResult:
    return run_batch(_worker_stages, batch)


def limit_threads(threads: int) -> None:
    """Keep N workers from oversubscribing the cores (math libraries default to one thread per core)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency, but stages may not need it
        pass


class LocalExecutor:
    """``workers == 1`` runs inline; more workers use spawned processes, each setting up the stages once."""

    def __init__(self, workers: int = 1, threads: int | None = None) -> None:
        """``threads``: math-library threads per worker (default: the cores divided among the workers;
        a single inline worker keeps the libraries' own defaults)."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.threads = threads

    def map(self, stages: list[Stage], batches: Iterable[list[Sample]]) -> Iterator[BatchResult]:
        if self.workers == 1:
            if self.threads is not None:
                limit_threads(self.threads)
            for stage in stages:
                stage.setup()
            for batch in batches:
                yield run_batch(stages, batch)
            return
        threads = self.threads or max(1, (os.cpu_count() or 1) // self.workers)
        context = mp.get_context("spawn")
        with context.Pool(self.workers, initializer=_init_worker, initargs=(stages, threads)) as pool:
            yield from pool.imap(_run_in_worker, batches, chunksize=1)
