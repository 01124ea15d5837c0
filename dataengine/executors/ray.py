"""Run the stage list on Ray actors: each actor sets the stages up once (models load once per actor).

Batches go to the actors round-robin; at most ``2 × workers`` batches are in flight (backpressure, so
a slow stage cannot fill memory) and results come back in input order, so the writers — and the
bytes they write — are the same as with the local executor.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from dataengine.executors.local import BatchResult, limit_threads, run_batch
from dataengine.sample import Sample
from dataengine.stage import Stage


class _StageActor:
    """The body of one Ray actor: the stages, set up once."""

    def __init__(self, stages: list[Stage], threads: int) -> None:
        limit_threads(threads)
        self.stages = stages
        for stage in self.stages:
            stage.setup()

    def run(self, batch: list[Sample]) -> BatchResult:
        return run_batch(self.stages, batch)


class RayExecutor:
    """``ray.init()`` locally (or ``address`` of a cluster), then ``workers`` actors of the given size."""

    def __init__(
        self, workers: int = 2, address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus

    def _init(self) -> bool:
        """Start (or join) Ray; True when this call started it."""
        try:
            import ray
        except ImportError as exc:
            raise ImportError("the Ray executor needs Ray: pip install 'ray==2.60.0'") from exc
        if ray.is_initialized():
            return False
        ray.init(
            address=self.address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="WARNING",
            configure_logging=False,
        )
        return True

    def map(self, stages: list[Stage], batches: Iterable[list[Sample]]) -> Iterator[BatchResult]:
        import ray

        started = self._init()
        threads = max(1, int(self.num_cpus))
        actor_class = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus)(_StageActor)
        actors = [actor_class.remote(stages, threads) for _ in range(self.workers)]
        in_flight: deque = deque()
        try:
            for n, batch in enumerate(batches):
                if len(in_flight) >= 2 * self.workers:
                    yield ray.get(in_flight.popleft())
                in_flight.append(actors[n % self.workers].run.remote(batch))
            while in_flight:
                yield ray.get(in_flight.popleft())
        finally:
            for actor in actors:
                ray.kill(actor)
            if started:
                ray.shutdown()
