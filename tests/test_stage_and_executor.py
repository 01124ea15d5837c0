import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataengine.executors import LocalExecutor, WorkerError
from dataengine.sample import TTS, Sample, Unit
from dataengine.stage import StageStats, TurnStage


class Shout(TurnStage):
    """Upper-cases a spoken turn's text; fails on texts containing 'boom' and drops ones containing 'drop'."""

    name = "shout"

    def process_turn(self, unit: Unit) -> None:
        turn = unit.turn
        if "boom" in turn.text:
            raise RuntimeError("exploded")
        if "drop" in turn.text:
            unit.drop(self.name, "dropped", 1.0)
            return
        turn.text = turn.text.upper()


def samples(n: int) -> list[Sample]:
    words = ["ok", "boom", "drop"]
    out = [Sample.pair(f"s{i}", i, f"{words[i % 3]} {i}", "r") for i in range(n)]
    for sample in out:
        sample.turns[0].origin, sample.turns[0].key = TTS, sample.id
    return out


def test_an_exception_becomes_a_reject_row_and_the_rest_go_on() -> None:
    batch = samples(6)
    stats = StageStats("shout")
    Shout()(batch, stats)
    assert [s.prompt for s in batch if s.kept] == ["OK 0", "OK 3"]
    assert batch[1].reject.reason == "error" and batch[1].reject.detail == "RuntimeError: exploded"
    assert batch[2].reject.reason == "dropped" and batch[2].reject.turn == 0
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


class DieOnSecond(TurnStage):
    """Kills its own worker process (as the OOM killer would) on the sample with index 5."""

    name = "die"

    def process_turn(self, unit: Unit) -> None:
        if unit.sample.index == 5:
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_batch_stops_the_build_with_a_clear_error() -> None:
    batches = [samples(12)[i : i + 2] for i in range(0, 12, 2)]
    with pytest.raises(WorkerError, match="worker process died"):
        list(LocalExecutor(2).map([DieOnSecond()], iter(batches)))


class DieAndTell(TurnStage):
    """Writes its worker's pid to ``marker``, then kills that worker, on the first sample it sees."""

    name = "die"

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def process_turn(self, unit: Unit) -> None:
        self.marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def _exited(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True


def test_a_worker_that_died_before_the_next_batch_is_handed_over_is_a_clear_error(tmp_path: Path) -> None:
    """The pool can break between two submits: ``submit`` raised BrokenProcessPool straight to the user
    (seen once in CI under load) instead of the one-line worker error."""
    marker = tmp_path / "pid"

    def batches() -> Iterator[list[Sample]]:
        yield samples(1)
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text() and _exited(int(marker.read_text()))):
            assert time.monotonic() < deadline, "the worker never ran its batch"
            time.sleep(0.05)
        time.sleep(1.0)  # the pool's manager thread marks the pool broken once it sees the exit
        yield from (samples(2) for _ in range(4))

    with pytest.raises(WorkerError, match="worker process died"):
        list(LocalExecutor(2).map([DieAndTell(marker)], batches()))


def test_a_dead_ray_actor_is_a_worker_error_however_ray_wraps_it() -> None:
    """Ray can hand a dead actor over as ``RayTaskError(ActorDiedError)``, a task error without a traceback
    string: it once crashed the build with an AttributeError instead of the one-line worker error."""
    errors = pytest.importorskip("ray.exceptions")
    from dataengine.executors.ray import _one_line

    wrapped = errors.RayTaskError("run_batch", "tb", errors.ActorDiedError()).as_instanceof_cause()
    for died in (errors.ActorDiedError(), wrapped):
        assert isinstance(_one_line(died), WorkerError) and "died" in str(_one_line(died))
    failed = _one_line(errors.RayTaskError("run_batch", "tb", ValueError("bad row")).as_instanceof_cause())
    assert not isinstance(failed, WorkerError) and "ValueError: bad row" in str(failed)
