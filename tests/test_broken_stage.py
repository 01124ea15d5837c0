"""A broken stage stops the build with one line; the log has its first traceback; build.json counts steps."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dataengine.cache import StageCache
from dataengine.cli import main
from dataengine.executors import LocalExecutor, StageFailed
from dataengine.health import check_error_rate, stage_counts
from dataengine.pipeline import build
from dataengine.recipe import ExecutorConfig, Recipe
from dataengine.sample import TTS, USER, Sample, Turn, Unit
from dataengine.stage import StageStats, TurnStage
from dataengine.text.filters import TextFilter
from dataengine.tts.stage import TTSStage


def _explode(self: TTSStage, unit: Unit) -> None:
    raise RuntimeError(f"voice engine exploded on {unit.sample.id}")


def test_a_stage_that_raises_on_every_sample_stops_the_build_with_one_line(
    tmp_path: Path, small_recipe: Recipe, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: 14 'error' rejects, an empty dataset and exit code 0."""
    monkeypatch.setattr(TTSStage, "process_turn", _explode)
    recipe_file = tmp_path / "small.yaml"
    recipe_file.write_text(yaml.safe_dump(small_recipe.model_dump(mode="json")))
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        result = CliRunner().invoke(
            main, ["build", str(recipe_file), "--out", str(out), "--no-cache", "--no-progress"]
        )
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()
    assert len(message) == 1 and message[0].startswith("Error: stage tts raised on 14 of 14 turns (100%")
    assert "RuntimeError: voice engine exploded on" in message[0]
    tracebacks = [r for r in caplog.records if "Traceback" in r.getMessage()]
    assert len(tracebacks) == 1 and "stage tts raised on a turn" in tracebacks[0].getMessage()
    assert "in _explode" in tracebacks[0].getMessage()  # where it raised, not just that it did
    assert not (out / "build.json").exists()


def test_the_bound_stops_a_build_early_once_enough_samples_were_seen(
    tmp_path: Path, small_recipe: Recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TTSStage, "process_turn", _explode)
    recipe = small_recipe.with_overrides(executor={"batch_size": 2, "error_rate_after": 4})
    seen = []
    real = TextFilter.__call__

    def count(self: TextFilter, samples: list[Sample], stats: StageStats) -> list[Sample]:
        seen.extend(s.id for s in samples)
        return real(self, samples, stats)

    monkeypatch.setattr(TextFilter, "__call__", count)
    with pytest.raises(StageFailed, match=r"stage tts raised on [4-6] of [4-6] turns"):
        build(recipe, tmp_path / "out", progress=False)
    assert len(seen) < 14  # stopped early, not after the whole source


def test_errors_under_the_bound_are_counted_per_step_in_build_json(
    tmp_path: Path, small_recipe: Recipe, small_build_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = json.loads((small_build_dir / "build.json").read_text())
    real = TextFilter.process_turn
    ids: list[str] = []

    def flaky(self: TextFilter, unit: Unit) -> None:
        ids.append(unit.sample.id)
        if len(ids) == 3:
            raise ValueError("unexpected character")
        real(self, unit)

    monkeypatch.setattr(TextFilter, "process_turn", flaky)
    recipe = small_recipe.with_overrides(executor={"max_error_rate": 0.1})
    summary = build(recipe, tmp_path / "out", progress=False, cache=StageCache())  # hits: no model runs
    assert summary.rejected["text_filters/error"] == 1
    steps = {s["stage"]: s for s in json.loads((tmp_path / "out" / "build.json").read_text())["stages"]}
    assert list(steps)[:2] == ["source", "text_filters"] and list(steps)[-1] == "write"
    assert steps["text_filters"]["dropped"]["error"] == 1
    before = {s["stage"]: s for s in info["stages"]}
    assert steps["tts"]["seen"] == before["tts"]["seen"] - 1
    assert steps["source"]["seen"] == 14 and before["source"]["seen"] == 14


def test_stage_counts_follow_the_reject_rows() -> None:
    rejected = Counter({"source/bad_row": 1, "text_filters/url": 2, "tts/error": 1, "write/duplicate_id": 1})
    counts = stage_counts(["text_filters", "tts", "tokenizer"], rejected, total=20)
    assert [(c["stage"], c["seen"]) for c in counts] == [
        ("source", 20),
        ("text_filters", 19),
        ("tts", 17),
        ("tokenizer", 16),
        ("write", 16),
    ]
    assert counts[2]["dropped"] == {"error": 1}


def test_the_error_bound() -> None:
    config = ExecutorConfig(max_error_rate=0.05, error_rate_after=50)
    stats = StageStats("asr", seen=49, errors=49)
    check_error_rate([stats], config)  # too few samples to stop a running build
    with pytest.raises(StageFailed, match="stage asr raised on 49 of 49"):
        check_error_rate([stats], config, final=True)  # but at its end, all it saw counts
    check_error_rate([StageStats("asr", seen=100, errors=5)], config, final=True)  # 5 % is allowed
    with pytest.raises(StageFailed, match="6 of 100 turns"):
        check_error_rate([StageStats("asr", seen=100, errors=6)], config)


class BatchCrash(TurnStage):
    name = "crash"

    def process(self, units: list[Unit]) -> None:
        raise MemoryError("cannot allocate the batch")

    def process_turn(self, unit: Unit) -> None:
        raise AssertionError("never reached")


def _batches() -> list[list[Sample]]:
    return [[Sample(f"s{i}", i, turns=[Turn(USER, "hi", origin=TTS, key=f"s{i}")])] for i in range(4)]


def test_a_stage_that_fails_for_a_whole_batch_is_one_line_from_every_executor() -> None:
    """Not one sample's fault (nothing becomes a reject row): the build stops, the traceback is kept."""
    for workers in (1, 2):  # inline, and raised in a worker process
        with pytest.raises(
            StageFailed, match="stage crash failed on a batch: MemoryError: cannot alloc"
        ) as err:
            list(LocalExecutor(workers).map([BatchCrash()], iter(_batches())))
        assert "Traceback" in err.value.details and "\n" not in str(err.value)
