"""Run stages in this process (1 worker) or in a pool of worker processes, results in input order.

Workers are spawned, not forked: a forked worker hangs in its first multi-threaded OpenMP region when
the parent has already run one (torch and CTranslate2 each bundle GNU OpenMP, which is not fork-safe;
seen here with torch matmuls), and a parent that built before in the same process has.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from dataengine.allocator import retain_freed_memory
from dataengine.errors import one_line
from dataengine.sample import Sample
from dataengine.stage import Stage, StageError, StageStats
from dataengine.threads import fixed_blas_threads, limit_threads

BatchResult = tuple[list[Sample], list[StageStats]]

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Read by OpenMP / BLAS runtimes at load time. Without them a worker's CTranslate2 (ASR) kept a second
OpenMP thread busy: alone no faster (10.6 s for 24 clips either way, 13.2 vs 10.6 CPU-s), but two such
workers slowed each other by 16-25 %."""


class WorkerError(RuntimeError):
    """A worker process vanished; the build cannot finish in this run (one line for the user)."""


class StageFailed(RuntimeError):
    """A stage is broken while the build runs: it raised for a whole batch, or on more of its samples than
    ``executor.max_error_rate`` allows. ``str()`` is one line for the user; ``details`` the traceback."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message, details)
        self.message, self.details = message, details

    def __str__(self) -> str:
        return self.message


_worker_stages: list[Stage] = []
_worker_setup_error: StageError | None = None
"""A stage that failed to start in this worker: raised by every batch, so the parent gets the one-line
reason instead of a broken pool."""


def run_batch(stages: list[Stage], batch: list[Sample]) -> BatchResult:
    """Push one batch through every stage in order; return it with each stage's stats for it. numpy's
    BLAS runs a fixed number of threads meanwhile (its rounding depends on it), in every executor."""
    stats = [StageStats(stage.name) for stage in stages]
    with fixed_blas_threads():
        for stage, stage_stats in zip(stages, stats, strict=True):
            try:
                batch = stage(batch, stage_stats)
            except StageError:  # it could not start (a CachedStage starts its stage at the first miss)
                raise
            except Exception as exc:  # noqa: BLE001 - not one sample's fault: the whole stage is broken
                raise _stage_failed(stage, exc) from None
    return batch, stats


def _stage_failed(stage: Stage, exc: Exception) -> StageFailed:
    """Call in an ``except`` block: the exception's first line for the user, its traceback for the log."""
    return StageFailed(
        f"stage {stage.name} failed on a batch: {type(exc).__name__}: {one_line(exc)[:200]}",
        traceback.format_exc(),
    )


def _init_worker(stages: list[Stage], threads: int) -> None:
    global _worker_stages, _worker_setup_error
    from tqdm import tqdm

    # tqdm (inside faster-whisper) would make a multiprocessing lock: a named semaphore that a worker
    # stopped on Ctrl-C leaks ("leaked semaphore objects" warnings). A worker draws no bars of its own.
    tqdm.set_lock(threading.RLock())
    limit_threads(threads)
    retain_freed_memory()
    _worker_stages = stages
    try:
        for stage in _worker_stages:
            stage.start()
    except StageError as exc:
        _worker_setup_error = exc


def _run_in_worker(batch: list[Sample]) -> BatchResult:
    if _worker_setup_error is not None:
        raise _worker_setup_error
    return run_batch(_worker_stages, batch)


class _WorkerProcess(mp.context.SpawnProcess):
    """A spawned worker that starts with SIGINT ignored (the disposition survives exec, and Python keeps
    an ignored SIGINT ignored). Ctrl-C reaches the whole process group; the parent handles it and stops
    the workers, instead of each printing a KeyboardInterrupt traceback from whatever import it was in."""

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            super().start()
            return
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            super().start()
        finally:
            signal.signal(signal.SIGINT, previous)


class _WorkerContext(mp.context.SpawnContext):
    Process = _WorkerProcess


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


class LocalExecutor:
    """``workers == 1`` runs inline; more workers use spawned processes, each setting up the stages once.
    A worker that dies (``kill -9``, the OOM killer) stops the build with :class:`WorkerError` instead of
    leaving it waiting for a batch that will never come."""

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
            retain_freed_memory()
            for stage in stages:
                stage.start()
            for batch in batches:
                yield run_batch(stages, batch)
            return
        threads = self.threads or max(1, usable_cores() // self.workers)
        pool = ProcessPoolExecutor(
            self.workers, mp_context=_WorkerContext(), initializer=_init_worker, initargs=(stages, threads)
        )
        pending: deque[Future[BatchResult]] = deque()
        saved_env = {name: os.environ.get(name) for name in THREAD_ENV}
        os.environ.update({name: str(threads) for name in THREAD_ENV})  # inherited by the workers (spawned
        # on submit): OpenMP and BLAS read these when they load, before any initializer could set them
        try:
            for batch in batches:  # at most 2 batches per worker in flight: memory stays bounded
                pending.append(_submit(pool, batch))
                if len(pending) >= 2 * self.workers:
                    yield _result(pending.popleft())
            while pending:
                yield _result(pending.popleft())
        except BaseException:  # Ctrl-C, a failed batch: stop the workers now rather than after their batch
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()  # safe: cache entries are written to a temporary name and renamed
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _submit(pool: ProcessPoolExecutor, batch: list[Sample]) -> Future[BatchResult]:
    """A worker that died before this batch was handed over breaks the pool here, not in a result."""
    try:
        return pool.submit(_run_in_worker, batch)
    except BrokenProcessPool:
        raise _worker_died() from None


def _result(future: Future[BatchResult]) -> BatchResult:
    try:
        return future.result()
    except BrokenProcessPool:
        raise _worker_died() from None


def _worker_died() -> WorkerError:
    return WorkerError(
        "a worker process died (killed, out of memory, or its stage setup failed: see the log above); "
        "finished samples are cached, so running the same command again resumes"
    )
