"""Run the stages on Ray: a pool of actors per stage that holds a model, a task per batch for the rest.

Each model stage (TTS, audio metrics, ASR, WhisperVQ) gets its own actors, sized per stage from the
recipe's ``executor`` section (``num_cpus``, ``num_gpus``, ``actors``), so a GPU stage can run on GPU
actors while CPU filters run beside it; each actor sets its stage up once. A batch's stage calls are
chained by object reference, so consecutive batches are in different stages at the same time. At most
``2 × workers`` batches are in flight (backpressure), and results come back in input order, so the
writers — and the bytes they write — are the same as with the local executor.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from traceback import format_exc
from typing import Any
from urllib.parse import urlsplit

from dataengine import numerics
from dataengine.allocator import retain_freed_memory
from dataengine.errors import one_line
from dataengine.executors.local import BatchResult, StageFailed, WorkerError, run_batch
from dataengine.recipe import ExecutorConfig, RecipeError, SettingError
from dataengine.sample import Sample
from dataengine.stage import Stage, StageError, StageStats
from dataengine.threads import limit_threads

log = logging.getLogger(__name__)


class _StageActor:
    """The body of one Ray actor: one stage, set up once. Created without its stage, so it answers
    :meth:`node` as soon as its process runs on a node; :meth:`start` (called next) then unpickles the
    stage, which imports its libraries, and loads its model."""

    def __init__(self, threads: int) -> None:
        limit_threads(threads)
        retain_freed_memory()
        self.stage: Stage | None = None
        self.setup_error: StageError | StageFailed | None = None

    def start(self, stage: Stage) -> None:
        self.stage = stage
        try:
            stage.start()
        except StageError as exc:  # kept for the first batch: a dead actor would lose the reason
            self.setup_error = exc
        except Exception as exc:  # noqa: BLE001 - the same: the reason reaches the user as one line
            what = f"{type(exc).__name__}: {one_line(exc)[:200]}"
            self.setup_error = StageFailed(f"stage {stage.name} failed to start: {what}", format_exc())

    def run(self, batch: list[Sample]) -> tuple[list[Sample], StageStats]:
        if self.setup_error is not None:
            raise self.setup_error
        assert self.stage is not None, "start() runs first: one caller's actor calls run in order"
        batch, stats = run_batch([self.stage], batch)
        return batch, stats[0]

    def node(self) -> str:
        """The id of the Ray node this actor runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()


def _run_stage(stage: Stage, batch: list[Sample]) -> tuple[list[Sample], StageStats]:
    """A stateless stage as a Ray task."""
    batch, stats = run_batch([stage], batch)
    return batch, stats[0]


def _holds_state(stage: Stage) -> bool:
    """True when the stage loads something in ``setup`` (a model): it then deserves long-lived actors."""
    return type(stage).setup is not Stage.setup


class ClusterError(RecipeError):
    """The Ray cluster given by ``--ray-address`` cannot be reached or joined; one line for the user."""


CONNECT_TIMEOUT_S = 3.0
_DEFAULT_PORTS = {"ray": 10001, "": 6379}  # Ray Client server; GCS of `ray start --head`


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ClusterError within ``timeout`` seconds unless something accepts TCP connections at
    ``address`` (``host:port`` or ``ray://host:port``). ``ray.init`` would instead retry for minutes."""
    if address == "auto" or address.startswith("local"):
        return  # found by Ray itself, from the running local cluster
    scheme, _, rest = address.rpartition("://")
    try:
        parts = urlsplit(f"//{rest}")
        host, port = parts.hostname, parts.port or _DEFAULT_PORTS.get(scheme, 6379)
    except ValueError as exc:
        raise ClusterError(f"--ray-address {address!r}: not host:port ({exc})") from None
    if not host:
        raise ClusterError(f"--ray-address {address!r}: no host (expected host:port or ray://host:port)")
    target = host if scheme else _ray_host(host)
    try:
        with socket.create_connection((target, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        via = f" (Ray connects to {target}:{port} for it)" if target != host else ""
        raise ClusterError(
            f"--ray-address {address}: no Ray cluster answers at {host}:{port}{via}: {reason}"
        ) from None


def _ray_host(host: str) -> str:
    """The host ``ray.init`` really connects to: it replaces a loopback address by the node's own IP."""
    try:
        from ray._private.services import resolve_ip_for_localhost
    except ImportError:
        return host
    try:
        return resolve_ip_for_localhost(host)
    except Exception:  # noqa: BLE001 - Ray's lookup failing leaves the address as the user wrote it
        return host


def _one_line(exc: Exception) -> Exception:
    """A Ray failure as the build's own error: a stage's StageError or StageFailed as raised in the worker,
    any other task error as StageFailed, a worker, actor or node that died as WorkerError (finished samples
    are in the cache)."""
    import ray

    errors = ray.exceptions
    died = (
        errors.RayActorError,
        errors.WorkerCrashedError,
        errors.NodeDiedError,
        errors.LocalRayletDiedError,
        errors.OwnerDiedError,
        errors.ObjectLostError,
    )
    cause = getattr(exc, "cause", None)
    # a dead actor can arrive as a RayTaskError too (Ray makes one per cause class): death is checked first
    if isinstance(exc, errors.RayTaskError) and not isinstance(exc, died) and not isinstance(cause, died):
        if isinstance(cause, StageError | StageFailed):
            return cause
        what = f"{type(cause).__name__}: {one_line(cause)}" if cause is not None else one_line(exc)
        return StageFailed(f"a Ray task failed: {what}", getattr(exc, "traceback_str", ""))
    return WorkerError(
        f"a Ray worker, actor or node died ({type(exc).__name__}: {one_line(exc)[:200]}); finished samples "
        "are cached, so running the same command again resumes"
    )


PLACEMENT_LOG_EVERY_S = 30.0
"""While actors wait for a node, the log says so this often."""


def _describe_asks(asks: dict[str, Any]) -> str:
    """What one actor of a stage asks the cluster for, e.g. ``num_cpus=1, worker_node=0.5``."""
    parts = [f"num_cpus={asks['num_cpus']:g}"]
    if asks["num_gpus"]:
        parts.append(f"num_gpus={asks['num_gpus']:g}")
    return ", ".join(parts + [f"{name}={amount:g}" for name, amount in (asks["resources"] or {}).items()])


def _pending_summary(pending: dict[Any, str], asks: dict[str, str]) -> str:
    counts = Counter(pending.values())
    return "; ".join(f"{n} actor(s) of stage {name} (each asks {asks[name]})" for name, n in counts.items())


def _not_placed(pending: dict[Any, str], asks: dict[str, str], timeout: float) -> str:
    return (
        f"the Ray cluster found no node within {timeout:g} s for {_pending_summary(pending, asks)}: no alive "
        "node has all of that free; add such a node, change executor.stages, or raise "
        "executor.placement_timeout_s where nodes are still starting"
    )


class RayExecutor:
    """``ray.init()`` locally (or join ``address``), then per-stage actor pools / tasks. After a build,
    :attr:`placement` maps each actor stage to the node ids of its actors."""

    def __init__(
        self, workers: int = 2, address: str | None = None, resources: ExecutorConfig | None = None
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if address:
            check_reachable(address)  # before any work starts
        self.workers = workers
        self.address = address
        self.resources = resources or ExecutorConfig()
        self.placement: dict[str, list[str]] = {}
        self._nodes: dict[str, list[Any]] = {}
        self._asks: dict[str, str] = {}

    def _init(self) -> bool:
        """Start (or join) Ray; True when this call started it."""
        try:
            import ray
        except ImportError as exc:
            raise ImportError("the Ray executor needs Ray: pip install 'ray==2.60.0'") from exc
        if ray.is_initialized():
            return False
        try:
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="WARNING",
                configure_logging=False,
                # Workers on any node load numpy/torch/CTranslate2 with the same kernel pins as this process.
                runtime_env={"env_vars": numerics.worker_env()},
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ClusterError(f"cannot start or join {where}: {first}") from None
        return True

    def _stage_caller(
        self, ray: Any, stage: Stage, actors: list[Any], share: float
    ) -> Callable[[int, Any], tuple[Any, Any]]:
        """A function (batch number, batch ref) -> (batch ref, stats ref) that runs ``stage`` on Ray."""
        res = self.resources.for_stage(stage.name)
        cpus = res.num_cpus or share
        asks = {"num_cpus": cpus, "num_gpus": res.num_gpus, "resources": dict(res.resources) or None}
        stage_ref = ray.put(stage)
        if _holds_state(stage):
            actor_class = ray.remote(**asks)(_StageActor)
            threads = max(1, int(cpus))
            pool = [actor_class.remote(threads) for _ in range(res.actors or self.workers)]
            actors.extend(pool)
            self._nodes[stage.name] = [actor.node.remote() for actor in pool]
            self._asks[stage.name] = _describe_asks(asks)
            for actor in pool:  # after node(): a model that takes minutes to load is not "not placed"
                actor.start.remote(stage_ref)
            return lambda n, batch: pool[n % len(pool)].run.options(num_returns=2).remote(batch)
        task = ray.remote(**asks, num_returns=2)(_run_stage)
        return lambda n, batch: task.remote(stage_ref, batch)

    def _cpu_share(self, ray: Any, stages: list[Stage]) -> float:
        """CPUs per actor/task of the stages the recipe gives no ``num_cpus``: what the explicit ones leave,
        spread over every other actor plus one slot per stateless stage, so all pools are placed together
        (an actor that cannot be placed would wait forever)."""
        total = {"CPU": 0.0, "GPU": 0.0}
        default_slots = 0
        for stage in stages:
            res = self.resources.for_stage(stage.name)
            count = (res.actors or self.workers) if _holds_state(stage) else 1
            total["GPU"] += res.num_gpus * count
            for name, amount in res.resources.items():
                total[name] = total.get(name, 0.0) + amount * count
            if res.num_cpus is None:
                default_slots += count
            else:
                total["CPU"] += res.num_cpus * count
        cluster = ray.cluster_resources()
        for kind in total:
            have = float(cluster.get(kind, 0.0))
            if total[kind] > have + 1e-9 or (kind == "CPU" and default_slots and total[kind] >= have):
                reserved = (
                    f"{total[kind]:g} {kind}s" if kind in ("CPU", "GPU") else f"{total[kind]:g} of {kind!r}"
                )
                raise SettingError(
                    "executor.stages", f"the stages reserve {reserved}, the Ray cluster has {have:g}"
                )
        return max(0.01, (float(cluster.get("CPU", 1.0)) - total["CPU"]) / max(1, default_slots))

    def _await_placement(self, ray: Any) -> None:
        """Wait until every actor has a node; raise ClusterError after ``placement_timeout_s``. Ray would
        wait forever for resources no alive node has free, and the build would hang without a word."""
        timeout = self.resources.placement_timeout_s
        pending = {ref: name for name, refs in self._nodes.items() for ref in refs}
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClusterError(_not_placed(pending, self._asks, timeout))
            waiting = list(pending)
            ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=min(left, PLACEMENT_LOG_EVERY_S))
            for ref in ready:
                del pending[ref]
            left = deadline - time.monotonic()
            if pending and left > 1:  # not just before the error
                log.warning(
                    "ray: waiting for a node for %s (%.0f s of executor.placement_timeout_s %g)",
                    _pending_summary(pending, self._asks),
                    timeout - left,
                    timeout,
                )

    def _report_placement(self, ray: Any) -> None:
        """Log (and keep in :attr:`placement`) the nodes each actor stage ran on."""
        self.placement = {name: ray.get(refs) for name, refs in self._nodes.items()}
        for name, nodes in self.placement.items():
            log.info("ray: stage %s ran on %d actor(s), node(s) %s", name, len(nodes), ", ".join(nodes))

    def map(self, stages: list[Stage], batches: Iterable[list[Sample]]) -> Iterator[BatchResult]:
        import ray

        started = self._init()
        actors: list[Any] = []
        in_flight: deque[tuple[Any, list[Any]]] = deque()
        self._nodes = {}

        def collect(refs: tuple[Any, list[Any]]) -> BatchResult:
            try:
                return ray.get(refs[0]), list(ray.get(refs[1]))
            except ray.exceptions.RayError as exc:
                raise _one_line(exc) from None

        try:
            share = self._cpu_share(ray, stages)
            callers = [self._stage_caller(ray, stage, actors, share) for stage in stages]
            self._await_placement(ray)
            for n, batch in enumerate(batches):
                if len(in_flight) >= 2 * self.workers:
                    yield collect(in_flight.popleft())
                ref: Any = batch
                stats = []
                for call in callers:
                    ref, stats_ref = call(n, ref)
                    stats.append(stats_ref)
                in_flight.append((ref, stats))
            while in_flight:
                yield collect(in_flight.popleft())
            self._report_placement(ray)
        except GeneratorExit:  # the build closed it early (its mix was complete): a normal end too
            self._report_placement(ray)
            raise
        finally:
            for actor in actors:
                ray.kill(actor)
            if started:
                ray.shutdown()
