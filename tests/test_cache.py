"""The stage cache: exact restores, what a change re-runs, and resuming a killed build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dataengine.audio.pcm import quantize_pcm16
from dataengine.cache import StageCache
from dataengine.cli import main
from dataengine.pipeline import build
from dataengine.recipe import Recipe
from dataengine.sample import TTS, USER, Turn


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stage_stats(summary) -> dict[str, tuple[int, int]]:  # noqa: ANN001
    return {s.name: (s.seen, s.cached) for s in summary.stages}


def test_entries_round_trip_exactly(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    audio = quantize_pcm16(np.random.default_rng(0).standard_normal(1600).astype(np.float32) * 0.1)
    raw = np.random.default_rng(1).standard_normal(8).astype(np.float32)  # not on the 16-bit grid
    turn = Turn(USER, "hi", origin=TTS, key="a")
    key = cache.key("fp", turn, ("key", "text"))
    assert key != cache.key("fp2", turn, ("key", "text"))
    assert key != cache.key("fp", Turn(USER, "hi!", origin=TTS, key="a"), ("key", "text"))
    assert cache.get("tts", key) is None
    cache.put("tts", key, {"audio": audio, "raw": raw, "voice": "v"}, {"m": 1.5})
    got = cache.get("tts", key)
    assert got is not None
    assert got["fields"]["audio"].dtype == np.float32 and np.array_equal(got["fields"]["audio"], audio)
    assert np.array_equal(got["fields"]["raw"], raw) and got["fields"]["voice"] == "v"
    assert got["metrics"] == {"m": 1.5}
    assert cache._dbs("tts").count()[1] < audio.nbytes  # stored as int16
    stats = cache.stats()
    assert stats.entries == 1 and stats.by_stage["tts"][0] == 1
    assert cache.gc(older_than_s=7200, now=time.time() + 3600) == (0, 0)
    removed, freed = cache.gc(older_than_s=60, now=time.time() + 3600)
    assert removed == 1 and freed > 0 and cache.stats().entries == 0


def test_editing_a_stage_s_code_changes_its_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataengine.stage import source_digest

    package = tmp_path / "fake_stage_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "measure.py").write_text("SCALE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = source_digest(("fake_stage_pkg",))
    (package / "measure.py").write_text("SCALE = 2\n")
    source_digest.cache_clear()
    assert source_digest(("fake_stage_pkg",)) != before
    with pytest.raises(ValueError, match="no source"):
        source_digest(("no_such_module_anywhere",))


def test_cached_rebuild_is_byte_identical_and_skips_the_models(
    tmp_path: Path, small_recipe: Recipe, small_build_dir: Path
) -> None:
    summary = build(small_recipe, tmp_path / "again", progress=False, cache=StageCache())
    assert tree_bytes(tmp_path / "again") == tree_bytes(small_build_dir)
    stats = stage_stats(summary)
    assert stats["tts"][1] == stats["tts"][0] == 14
    assert stats["tokenizer"][1] == stats["tokenizer"][0] > 0


def test_a_threshold_change_reruns_only_judging(
    tmp_path: Path, small_recipe: Recipe, small_build_dir: Path
) -> None:
    changed = small_recipe.with_overrides(
        tokenizer={**small_recipe.tokenizer.model_dump(), "max_sound_tokens": 40},
        text_filters={**small_recipe.text_filters.model_dump(), "length_margin": 10},
    )
    summary = build(changed, tmp_path / "strict", progress=False, cache=StageCache())
    stats = stage_stats(summary)
    assert stats["tts"][1] == stats["tts"][0] and stats["tokenizer"][1] == stats["tokenizer"][0] > 0
    assert summary.rejected["tokenizer/too_many_sound_tokens"] > 0


def test_new_source_rows_synthesize_only_themselves(
    tmp_path: Path, small_recipe: Recipe, small_build_dir: Path
) -> None:
    summary = build(
        small_recipe.with_overrides(limit=16), tmp_path / "more", progress=False, cache=StageCache()
    )
    tts_seen, tts_cached = stage_stats(summary)["tts"]
    assert (tts_seen, tts_cached) == (16, 14)


def test_cache_commands(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    cache.put("tts", "ab" * 32, {"voice": "v"}, {})
    result = CliRunner().invoke(main, ["cache", "--cache-dir", str(tmp_path), "stats"])
    assert result.exit_code == 0 and "tts" in result.output and "1 entries" in result.output
    result = CliRunner().invoke(main, ["cache", "--cache-dir", str(tmp_path), "gc", "--older-than", "soon"])
    assert result.exit_code == 2 and "duration" in result.output
    result = CliRunner().invoke(main, ["cache", "--cache-dir", str(tmp_path), "gc", "--older-than", "0s"])
    assert result.exit_code == 0 and "removed 1 entries" in result.output


def test_gc_removes_whisper_conversions_no_version_reads_and_nothing_else(tmp_path: Path) -> None:
    """A converted checkpoint named before the converter's digest was in its name (151 MB for tiny.en)
    stayed in every user's cache: no build read it and ``cache gc`` did not know it."""
    from dataengine.tokenizer.ct2_whisper import converter_digest

    folder = tmp_path / "whisper"
    folder.mkdir()
    weights = "1a" * 32
    current = folder / f"{weights}-c{converter_digest()}.pt"
    old_name, other = folder / f"{weights}.pt", folder / f"{weights}-c{'0' * 12}.pt"
    mine = [folder / "large-v3.pt", folder / f"{weights}.pt.bak", folder / "notes.txt"]  # not its names
    for path in [current, old_name, other, *mine]:
        path.write_bytes(b"x" * 1024)
    (folder / "subdir.pt").mkdir()
    (folder / f"{'2b' * 32}.pt").symlink_to(mine[2])  # a link of its name shape: not a file it wrote
    result = CliRunner().invoke(main, ["cache", "--cache-dir", str(tmp_path), "gc", "--older-than", "1d"])
    assert result.exit_code == 0 and old_name.exists() and other.exists()  # recent: kept for 1 day
    past = time.time() - 2 * 86400
    for path in (old_name, other, current):
        os.utime(path, (past, past))
    result = CliRunner().invoke(main, ["cache", "--cache-dir", str(tmp_path), "gc", "--older-than", "1d"])
    assert result.exit_code == 0, result.output
    assert not old_name.exists() and not other.exists() and old_name.name in result.output
    assert current.exists() and all(path.exists() for path in mine) and (folder / "subdir.pt").is_dir()
    assert (folder / f"{'2b' * 32}.pt").is_symlink()


@pytest.mark.slow
def test_kill_9_during_the_build_then_resume_gives_identical_bytes(
    tmp_path: Path, small_recipe: Recipe, small_build_dir: Path
) -> None:
    recipe_file = tmp_path / "small.yaml"
    recipe_file.write_text(yaml.safe_dump(small_recipe.model_dump(mode="json")))
    cache_dir, out = tmp_path / "cache", tmp_path / "out"
    command = [sys.executable, "-m", "dataengine.cli", "build", str(recipe_file), "--out", str(out)]
    command += ["--cache-dir", str(cache_dir), "--no-progress"]

    def tts_entries() -> int:
        return StageCache(cache_dir).count("tts")

    for wanted_tts_entries in (3, 9):  # killed during TTS, then again after some encoding
        log = tmp_path / f"killed-{wanted_tts_entries}.log"
        before = entries = tts_entries()
        with log.open("wb") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            entries = tts_entries()
            if entries >= wanted_tts_entries:
                break
            time.sleep(0.05)
        running = process.poll() is None  # not finished, not crashed: the kill below is what ends it
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert running and process.returncode == -signal.SIGKILL, log.read_text(errors="replace")[-2000:]
        assert entries >= wanted_tts_entries > before  # the cache held this run's work when it was killed
        assert not (out / "manifest").exists()  # nothing half-written is visible
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert tree_bytes(out) == tree_bytes(small_build_dir)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["shard_closed:2", "manifest", "publish:3", "publish:9"])
def test_kill_9_at_a_crash_point_then_resume_gives_identical_bytes(
    tmp_path: Path, small_recipe: Recipe, small_build_dir: Path, point: str
) -> None:
    """Killed between shards, between the two manifest files, or half-way through replacing an earlier
    build: nothing half-written passes for a build, and the same command then finishes it exactly."""
    recipe_file = tmp_path / "small.yaml"
    recipe_file.write_text(yaml.safe_dump(small_recipe.model_dump(mode="json")))
    out = tmp_path / "out"
    base = [sys.executable, "-m", "dataengine.cli"]
    command = [*base, "build", str(recipe_file), "--out", str(out), "--no-progress"]
    if point.startswith("publish"):  # an earlier, smaller build is being replaced
        earlier = [*command, "--limit", "4"]
        assert subprocess.run(earlier, capture_output=True, timeout=300).returncode == 0
    env = {**os.environ, "DATAENGINE_CRASH_AT": point}
    killed = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    for reader in (["query", str(out), "select count(*) from samples"], ["inspect", str(out)]):
        refused = subprocess.run([*base, *reader], capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2, refused.stdout
        assert "incomplete build" in refused.stderr or "not a dataengine build" in refused.stderr
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert tree_bytes(out) == tree_bytes(small_build_dir)
