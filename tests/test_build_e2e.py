"""End to end: a real build (Piper, Silero VAD, Whisper tiny.en + codebook), read back two ways."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf
import webdataset as wds

from dataengine.formatting import parse_sound_string
from dataengine.pipeline import build
from dataengine.writers.members import members_digest


def read_shard_members(out: Path) -> dict[str, dict[str, bytes]]:
    """key -> {ext: bytes} over every shard, read with webdataset without decoding."""
    urls = sorted(str(p) for p in (out / "shards").glob("*.tar"))
    members: dict[str, dict[str, bytes]] = defaultdict(dict)
    for row in wds.WebDataset(urls, shardshuffle=False):
        members[row["__key__"]] = {k: v for k, v in row.items() if not k.startswith("__")}
    return members


def test_shards_and_manifest_agree(small_build_dir: Path) -> None:
    con = duckdb.connect()
    samples = con.execute(
        f"select id, shard, key, task, n_sound_tokens, sha256, duration_s, prompt "
        f"from read_parquet('{small_build_dir}/manifest/samples.parquet') order by index"
    ).fetchall()
    rejects = con.execute(
        f"select count(*) from read_parquet('{small_build_dir}/manifest/rejects.parquet')"
    ).fetchall()
    members = read_shard_members(small_build_dir)
    assert len(samples) + rejects[0][0] == 14
    assert len(samples) >= 10
    assert sorted(members) == sorted(row[0] for row in samples)
    for sample_id, shard, key, task, n_tokens, sha256, duration, prompt in samples:
        assert key == sample_id and (small_build_dir / "shards" / shard).is_file()
        parts = members[key]
        assert members_digest(parts) == sha256
        record = json.loads(parts["json"])
        assert record["task"] == task and record["speech"][0]["text"] == prompt
        assert [t["role"] for t in record["conversations"]] == ["user", "assistant"]
        tokens = np.load(io.BytesIO(parts["tokens.npy"]))
        assert tokens.dtype == np.int16 and len(tokens) == n_tokens
        assert 0 <= tokens.min() and tokens.max() < 512
        audio, rate = sf.read(io.BytesIO(parts["flac"]))
        assert rate == 16000 and abs(len(audio) / rate - duration) < 1e-3
        assert abs(n_tokens - 25 * duration) <= 1  # 25 tokens per second of audio
        user = record["conversations"][0]["content"]
        sound = user[user.index("<|sound_start|>") :]
        assert parse_sound_string(sound).tolist() == tokens.tolist()


def test_every_source_row_is_accounted_for(small_build_dir: Path, small_recipe) -> None:
    from dataengine.sources import iter_source

    con = duckdb.connect()
    ids = con.execute(
        f"select id from read_parquet('{small_build_dir}/manifest/samples.parquet') union all "
        f"select id from read_parquet('{small_build_dir}/manifest/rejects.parquet')"
    ).fetchall()
    assert sorted(i for (i,) in ids) == sorted(s.id for s in iter_source(small_recipe))


def test_same_recipe_and_seed_give_identical_bytes(
    tmp_path: Path, small_recipe, small_build_dir: Path
) -> None:
    again = tmp_path / "again"
    build(small_recipe, again, progress=False)
    files = sorted(p.relative_to(small_build_dir) for p in small_build_dir.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (small_build_dir / rel).read_bytes() == (again / rel).read_bytes(), rel


@pytest.mark.slow
def test_two_workers_give_identical_bytes(tmp_path: Path, small_recipe, small_build_dir: Path) -> None:
    parallel = tmp_path / "parallel"
    build(small_recipe, parallel, workers=2, progress=False)
    for path in sorted(small_build_dir.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (parallel / path.relative_to(small_build_dir)).read_bytes(), path


def test_broken_rows_and_too_many_tokens_become_rejects(tmp_path: Path) -> None:
    from dataengine.recipe import Recipe

    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            [
                json.dumps({"prompt": "What is the capital of France?", "response": "Paris."}),
                json.dumps({"prompt": "Visit https://example.com", "response": "No."}),
                json.dumps(
                    {"prompt": "Tell me a long story about the sea and the ships.", "response": "Once..."}
                ),
                json.dumps({"response": "no prompt"}),
            ]
        )
        + "\n"
    )
    recipe = Recipe.model_validate(
        {
            "name": "edge",
            "source": {"kind": "files", "paths": [str(rows)]},
            "tokenizer": {"max_sound_tokens": 60},  # the long prompt is ~3 s = 75 tokens
            "text_filters": {"length_margin": 3.0},
        }
    )
    summary = build(recipe, tmp_path / "out", progress=False)
    assert summary.kept == 1
    con = duckdb.connect()
    reasons = dict(
        con.execute(
            f"select id, stage || '/' || reason from read_parquet('{tmp_path}/out/manifest/rejects.parquet')"
        ).fetchall()
    )
    assert reasons == {
        "rows-000001": "text_filters/url",
        "rows-000002": "tokenizer/too_many_sound_tokens",
        "rows-000003": "source/bad_row",
    }
    value = con.execute(
        f"select value from read_parquet('{tmp_path}/out/manifest/rejects.parquet') where id = 'rows-000002'"
    ).fetchall()[0][0]
    assert value > 60


@pytest.mark.slow
def test_ray_executor_gives_identical_bytes(tmp_path: Path, small_recipe, small_build_dir: Path) -> None:
    """Per-stage pools sized from the recipe (one tokenizer actor, half-CPU TTS actors) change nothing."""
    from dataengine.executors import RayExecutor

    recipe = small_recipe.with_overrides(
        executor={"stages": {"tokenizer": {"actors": 1}, "tts": {"num_cpus": 0.5, "actors": 2}}}
    )
    out = tmp_path / "ray"
    summary = build(recipe, out, executor=RayExecutor(workers=2, resources=recipe.executor), progress=False)
    assert summary.kept > 0 and [s.seen for s in summary.stages][0] == 14
    for path in sorted(small_build_dir.rglob("*")):
        if path.is_file() and path.name not in ("recipe.yaml", "build.json"):  # the recipe names the executor
            assert path.read_bytes() == (out / path.relative_to(small_build_dir)).read_bytes(), path
    infos = [json.loads((d / "build.json").read_text()) for d in (small_build_dir, out)]
    for info in infos:  # build.json differs only by the recipe's digest (and so by its seal)
        del info["seal"], info["files"]["recipe.yaml"]
    assert infos[0] == infos[1]

    from dataengine.recipe import RecipeError

    greedy = small_recipe.with_overrides(executor={"stages": {"tokenizer": {"num_cpus": 8}}})
    with pytest.raises(RecipeError, match=r"the stages reserve 16 CPUs, the Ray cluster has \d+"):
        build(
            greedy,
            tmp_path / "greedy",
            executor=RayExecutor(workers=2, resources=greedy.executor),
            progress=False,
        )


def test_resources_for_an_unknown_stage_are_a_recipe_error(tmp_path: Path, small_recipe) -> None:
    from dataengine.recipe import RecipeError

    recipe = small_recipe.with_overrides(executor={"stages": {"tokeniser": {"actors": 1}}})
    with pytest.raises(RecipeError, match="executor.stages: no stage named 'tokeniser'"):
        build(recipe, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
