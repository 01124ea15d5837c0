"""Shared fixtures: one small real build reused by the end-to-end and CLI tests."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from build_facts import ManifestFacts, manifest_facts

from dataengine.cache import StageCache
from dataengine.pipeline import BuildSummary, build
from dataengine.recipe import Recipe

# Every test session gets its own empty cache (stage results, converted Whisper weights), never ~/.cache.
os.environ["DATAENGINE_CACHE"] = tempfile.mkdtemp(prefix="dataengine-test-cache-")
atexit.register(shutil.rmtree, os.environ["DATAENGINE_CACHE"], True)

SMALL_RECIPE = {
    "name": "small",
    "seed": 11,
    "limit": 14,
    "source": {"kind": "chatterbot", "categories": ["ai", "computers"]},
    "tts": {
        "voices": [
            {"backend": "piper", "voice": "joe-us", "length_scale": 1.0},
            {"backend": "piper", "voice": "joe-us", "length_scale": 0.85},
        ]
    },
    "shards": {"max_samples": 5},
}


@pytest.fixture(scope="session")
def small_recipe() -> Recipe:
    return Recipe.model_validate(SMALL_RECIPE)


@pytest.fixture(scope="session")
def small_build(tmp_path_factory: pytest.TempPathFactory, small_recipe: Recipe) -> BuildSummary:
    out = tmp_path_factory.mktemp("builds") / "small"
    return build(small_recipe, out, progress=False, cache=StageCache())


@pytest.fixture(scope="session")
def small_build_dir(small_build: BuildSummary) -> Path:
    return small_build.out


@pytest.fixture(scope="session")
def small_facts(small_build_dir: Path) -> ManifestFacts:
    """The shared small build's kept count, ids and shards (its ``limit`` is 14 source rows, not 14 kept)."""
    return manifest_facts(small_build_dir)


@pytest.fixture(scope="session")
def rejecting_build_dir(tmp_path_factory: pytest.TempPathFactory, small_build: BuildSummary) -> Path:
    """The small build again with ``min_duration_s`` at its median kept duration: about half its samples
    are rejected as ``too_short``, with their audio in ``rejected/`` (every stage result is cached)."""
    import duckdb

    samples = str(small_build.out / "manifest" / "samples.parquet")
    median = duckdb.sql(f"SELECT median(duration_s) FROM '{samples}'").fetchall()[0][0]
    recipe = Recipe.model_validate(
        {**SMALL_RECIPE, "name": "small-rejecting", "audio_filters": {"min_duration_s": round(median, 4)}}
    )
    out = tmp_path_factory.mktemp("builds") / "small-rejecting"
    build(recipe, out, progress=False, cache=StageCache())
    return out
