import os
import signal

import pytest

from dataengine.executors import LocalExecutor, WorkerError
from dataengine.sample import Sample
from dataengine.stage import SampleStage, StageStats


class Shout(SampleStage):
    """Upper-cases the prompt; fails on prompts containing 'boom' and drops ones containing 'drop'."""

    name = "shout"

    def process_one(self, sample: Sample) -> None:
        if "boom" in sample.prompt:
            raise RuntimeError("exploded")
        if "drop" in sample.prompt:
            sample.drop(self.name, "dropped", 1.0)
            return
        sample.prompt = sample.prompt.upper()


def samples(n: int) -> list[Sample]:
    words = ["ok", "boom", "drop"]
    return [Sample(id=f"s{i}", index=i, prompt=f"{words[i % 3]} {i}", response="") for i in range(n)]


def test_an_exception_becomes_a_reject_row_and_the_rest_go_on() -> None:
    batch = samples(6)
    stats = StageStats("shout")
    Shout()(batch, stats)
    assert [s.prompt for s in batch if s.kept] == ["OK 0", "OK 3"]
    assert batch[1].reject.reason == "error" and batch[1].reject.detail == "RuntimeError: exploded"
    assert batch[2].reject.reason == "dropped"
    assert (stats.seen, stats.dropped) == (6, 4)


def test_rejected_samples_skip_later_stages() -> None:
    batch = samples(3)
    Shout()(batch, StageStats("a"))
    stats = StageStats("b")
    Shout()(batch, stats)
    assert stats.seen == 1 and batch[0].prompt == "OK 0"


def test_two_worker_processes_keep_input_order_and_stats() -> None:
    batches = [samples(12)[i : i + 4] for i in range(0, 12, 4)]
    results = list(LocalExecutor(2).map([Shout()], iter(batches)))
    assert [s.id for batch, _ in results for s in batch] == [f"s{i}" for i in range(12)]
    assert sum(stats[0].dropped for _, stats in results) == 8
    inline = list(LocalExecutor(1).map([Shout()], iter(batches)))
    assert [[s.prompt for s in b] for b, _ in inline] == [[s.prompt for s in b] for b, _ in results]


class DieOnSecond(SampleStage):
    """Kills its own worker process (as the OOM killer would) on the sample with index 5."""

    name = "die"

    def process_one(self, sample: Sample) -> None:
        if sample.index == 5:
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_batch_stops_the_build_with_a_clear_error() -> None:
    batches = [samples(12)[i : i + 2] for i in range(0, 12, 2)]
    with pytest.raises(WorkerError, match="worker process died"):
        list(LocalExecutor(2).map([DieOnSecond()], iter(batches)))
