"""The mix plan: which samples go in (by demand), and which come out, in what order (by the mix).

Each task draws from a *stream* of prepared samples (tasks with the same preparation share one). The
writer walks the exact task pattern (:class:`~dataengine.tasks.mixer.TaskMixer`): for the next slot it
takes the next processed sample of that task's stream, records it as a reject and moves on to the
stream's next sample, or writes it and moves to the next slot. So what is written depends only on each
stream's own sequence of samples and the pattern, never on how the streams were interleaved on the way
in, and the interleaving is free to follow demand: :meth:`MixPlan.feed` sends the stream whose kept
supply is lowest against its share, so no stream's backlog grows with the build.

A build ends at ``limit`` items taken (kept or rejected), or when the stream the pattern needs has run
out; samples processed beyond that point (at most the executor's in-flight window) are not part of the
build, like rows beyond a limit. Several streams that read the same source split its rows by a seeded
draw per row id (weighted by their shares), so no row is used twice.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dataengine.augment.plan import augment_stream
from dataengine.hashing import weighted_choice
from dataengine.recipe import Recipe
from dataengine.sample import Sample
from dataengine.sources import iter_rows
from dataengine.tasks.base import Task
from dataengine.tasks.mixer import TaskMixer


@dataclass
class Stream:
    """One stream of prepared samples and the tasks it serves; counts for the demand estimate."""

    key: str
    tasks: list[str]
    share: float
    items: Iterator[Sample]
    produced: int = 0
    exhausted: bool = False
    inflight: int = 0
    queue: deque[Sample] = field(default_factory=deque)
    queued_kept: int = 0
    arrived: int = 0
    arrived_kept: int = 0

    def supply(self) -> float:
        """Kept samples it can offer soon: those waiting, plus those in flight at the rate seen so far."""
        rate = (self.arrived_kept + 1) / (self.arrived + 1)
        return self.queued_kept + self.inflight * rate


def _split(rows: Iterator[Sample], weights: list[float], position: int, seed: int) -> Iterator[Sample]:
    for row in rows:
        if weighted_choice(weights, seed, "source-split", row.id) == position:
            yield row


class MixPlan:
    """Feeds the executor and orders its results into the exact mix (see the module docstring)."""

    def __init__(self, recipe: Recipe, tasks: dict[str, Task]) -> None:
        self.tasks = tasks
        self.limit = recipe.limit
        self.mixer = TaskMixer({name: task.share for name, task in tasks.items()}, recipe.seed)
        groups: dict[str, list[str]] = {}
        for name, task in tasks.items():
            groups.setdefault(task.stream_key(), []).append(name)
        by_source: dict[str, list[str]] = {}
        for key, names in groups.items():
            first = tasks[names[0]]
            if not first.generates:
                by_source.setdefault(
                    json.dumps(first.source.model_dump(mode="json"), sort_keys=True), []
                ).append(key)
        self.streams: list[Stream] = []
        self.stream_of: dict[str, Stream] = {}
        for key, names in groups.items():
            first = tasks[names[0]]
            share = sum(tasks[n].share for n in names)
            rows = None
            if not first.generates:
                source_key = json.dumps(first.source.model_dump(mode="json"), sort_keys=True)
                siblings = by_source[source_key]
                rows = iter_rows(first.source)
                if len(siblings) > 1:
                    weights = [sum(tasks[n].share for n in groups[k]) for k in siblings]
                    rows = _split(rows, weights, siblings.index(key), recipe.seed)
            stream = Stream(key, names, share, augment_stream(first.samples(rows), recipe, names))
            self.streams.append(stream)
            for name in names:
                self.stream_of[name] = stream
        self._inflight: deque[Stream] = deque()
        self.accounted = 0
        self.done = False
        self.ended = ""

    def _pick(self) -> Stream | None:
        candidates = [
            s for s in self.streams if not s.exhausted and (self.limit is None or s.produced < self.limit)
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda s: s.supply() / s.share)

    def feed(self) -> Iterator[Sample]:
        """The executor's input: samples from the stream most in demand, until the plan is done."""
        while not self.done:
            stream = self._pick()
            if stream is None:
                return
            sample = next(stream.items, None)
            if sample is None:
                stream.exhausted = True
                continue
            stream.produced += 1
            stream.inflight += 1
            self._inflight.append(stream)
            yield sample

    def arrive(self, sample: Sample) -> None:
        """A processed sample (the executor returns them in input order)."""
        stream = self._inflight.popleft()
        stream.inflight -= 1
        stream.arrived += 1
        stream.arrived_kept += sample.kept
        stream.queued_kept += sample.kept
        stream.queue.append(sample)

    def drain(
        self, write_kept: Callable[[Sample, Task], bool], write_reject: Callable[[Sample], None]
    ) -> None:
        """Hand every sample the pattern can take now to the writers, in the mix's order.

        ``write_kept`` formats and writes a kept sample as the given task, returning False when the
        sample became a reject on the way (it then used no slot of the pattern)."""
        while not self.done:
            if self.limit is not None and self.accounted >= self.limit:
                self.done, self.ended = True, "limit"
                return
            task = self.mixer.peek()
            stream = self.stream_of[task]
            if not stream.queue:
                if stream.exhausted and stream.inflight == 0:
                    self.done, self.ended = True, f"{task}: no more samples"
                return
            sample = stream.queue.popleft()
            stream.queued_kept -= sample.kept
            self.accounted += 1
            if not sample.kept:
                if len(stream.tasks) == 1:  # a stream of one task: the reject is that task's
                    sample.task = stream.tasks[0]
                write_reject(sample)
            elif write_kept(sample, self.tasks[task]):
                self.mixer.next_task()

    def finish(
        self, write_kept: Callable[[Sample, Task], bool], write_reject: Callable[[Sample], None]
    ) -> None:
        """After the last result: take what the pattern still can; the build ends there."""
        for stream in self.streams:
            stream.exhausted = True  # the feed is over: nothing more will come
        self.drain(write_kept, write_reject)
        if not self.done:  # pragma: no cover - drain ends only at the limit or on a finished stream
            self.done, self.ended = True, "no more samples"
