"""The T2S token path on tiny random checkpoints made with whisperspeech2's own classes (``t2s_fixtures``).

The tokens come from the library's T2S network; the checkpoints load through a local path and through a
hand-made offline huggingface_hub cache (the real ``org/repo:file`` path). Values that depend on the CPU
(which codes a random model picks) are never asserted: the tests check where tokens come from, that they
are deterministic on this machine, and that forced drift (always cut off, one repeated code, another
token space) is rejected, reported and, past the bound, stops the build.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from tts_fixtures import offline_hub

from dataengine.executors import StageFailed
from dataengine.pipeline import build
from dataengine.recipe import Recipe, RecipeError, SettingError, load_recipe
from dataengine.registry import metric_names
from dataengine.t2s import drift
from dataengine.t2s.model import T2SError, T2SModel, check_token_space, read_t2s, turn_seed

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("whisperspeech2") is None, reason="pip install whisperspeech2==2.0.1"
)
HUB_REF = "dataengine-tests/t2s-tiny:t2s-tiny.model"
PRESET_REF = "collabora/whisperspeech:t2s-v1.9-medium-7lang.model"
RELAXED_TEXT = {"max_symbol_ratio": 1.0, "max_digit_ratio": 1.0}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import t2s_fixtures as tf

    root = tmp_path_factory.mktemp("t2s")
    torch.set_num_threads(1)
    found = {
        "normal": tf.tiny_t2s(root / "normal.model"),
        "long": tf.tiny_t2s(root / "long.model", p_end=1e-7, stoks_len=64),
        "repeats": tf.tiny_t2s(root / "repeats.model", repeat_code=7, p_end=1 / 40),
        "other_space": tf.tiny_t2s(root / "other.model", codebook=torch.randn(513, 384), seed=1),
        "other_size": tf.tiny_t2s(root / "size.model", codebook=torch.randn(1025, 64), seed=2),
    }
    tf.hub_file(root / "hf", HUB_REF, found["normal"])
    tf.hub_file(root / "hf", PRESET_REF, found["normal"])
    found["hf"] = root / "hf"
    return found


@pytest.fixture
def offline(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    home = models["hf"]
    offline_hub(home, monkeypatch)
    torch.set_num_threads(1)


def t2s_recipe(model: str, limit: int = 4, guard: dict | None = None, **extra: object) -> Recipe:
    return Recipe.model_validate(
        {
            "name": "t2s",
            "seed": 3,
            "limit": limit,
            "source": {"kind": "chatterbot", "categories": ["ai"]},
            "text_filters": RELAXED_TEXT,
            "asr": {"model": "none"},
            "tasks": {"instruction": {"share": 1.0, "tokens": "t2s"}},
            "t2s": {"model": model, "temperature": 1.0, "guard": {"fraction": 0.0, **(guard or {})}},
            **extra,
        }
    )


def manifest_rows(out: Path, table: str, columns: str) -> list[tuple]:
    return duckdb.sql(f"select {columns} from read_parquet('{out}/manifest/{table}.parquet')").fetchall()


# --- the figures -------------------------------------------------------------------------------------


def naive_edit_distance(a: list[int], b: list[int]) -> int:
    table = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = min(
                table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
    return table[-1][-1]


def test_drift_figures() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        a, b = rng.integers(0, 4, rng.integers(0, 12)), rng.integers(0, 4, rng.integers(0, 12))
        assert drift.edit_distance(a, b) == naive_edit_distance(list(a), list(b))
    assert drift.collapse_repeats(np.array([1, 1, 2, 2, 2, 1])).tolist() == [1, 2, 1]
    seq = np.array([5, 5, 5, 5, 1, 2])
    assert drift.repeat_share(seq) == pytest.approx(3 / 5) and drift.run_share(seq) == pytest.approx(4 / 6)
    # a slower copy of the same speech (every code twice) is the same after collapsing repeats
    speech = rng.integers(0, 512, 50)
    assert drift.normalised_edit_distance(np.repeat(speech, 2), speech) == 0.0
    assert drift.histogram_distance(speech, speech, 513) == 0.0
    assert drift.histogram_distance(np.full(20, 7), np.full(30, 9), 513) == 1.0  # disjoint code sets
    figures = drift.compare(np.repeat(speech, 2), speech, 513)
    assert figures["t2s_guard_length_ratio"] == 2.0 and figures["t2s_guard_tokens"] == 50


# --- the model -------------------------------------------------------------------------------------


def test_generation_is_the_library_model_and_deterministic(models: dict[str, Path]) -> None:
    from whisperspeech2.t2s_up_wds_mlang_enclm import TSARTransformer

    model = T2SModel(models["normal"], batch_size=4)
    assert isinstance(model.model, TSARTransformer)
    texts = ["What is AI?", "Hello there.", "Tell me a joke about robots.", "Bye."]
    seeds = [turn_seed(3, t) for t in texts]
    batch = model.generate(texts, seeds, temperature=1.0)
    alone = [model.generate([t], [s], temperature=1.0)[0] for t, s in zip(texts, seeds, strict=True)]
    for one, other in zip(batch, alone, strict=True):  # a row's tokens do not depend on its batch
        np.testing.assert_array_equal(one.tokens, other.tokens)
    assert all(len(g.tokens) < model.max_tokens and not g.cut_off for g in batch) and any(
        len(g.tokens) for g in batch
    )
    assert all(g.tokens.max() < 513 for g in batch)  # ids of the tokenizer's codebook (+ mask code)
    reseeded = model.generate(texts, [s + 1 for s in seeds], temperature=1.0)
    assert any(not np.array_equal(a.tokens, b.tokens) for a, b in zip(batch, reseeded, strict=True))
    greedy = model.generate(texts[:2], [0, 1], temperature=0.0)
    again = model.generate(texts[:2], [5, 6], temperature=0.0)  # greedy ignores the seed
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(greedy, again, strict=True))
    # the library's own batch API does not run in whisperspeech2 2.0.1 (why this module batches itself)
    from dataengine.t2s.model import library_generate_batch_works

    assert not library_generate_batch_works(TSARTransformer.load_model(local_filename=str(models["normal"])))


def test_token_space_mismatch_is_refused(models: dict[str, Path], offline: None) -> None:
    check_token_space(read_t2s(models["normal"], "normal"), "normal", "default")  # same codebook: fine
    with pytest.raises(T2SError, match="trained on another codebook") as info:
        check_token_space(read_t2s(models["other_space"], "other"), "other", "default")
    assert "\n" not in str(info.value)
    with pytest.raises(T2SError, match="emits 1025 codes of width 64.* has 513 of width 384"):
        check_token_space(read_t2s(models["other_size"], "size"), "size", "default")
    # the preset Ichigo used names its tokenizer: the embedded tiny.en default is refused before any file
    # content is compared (the cached file is the tiny one here)
    from dataengine.t2s.model import resolve_t2s

    preset = "t2s-v1.9-medium-7lang"
    with pytest.raises(T2SError, match="tokenizer 'ichigo-v3-7lang'.*tokenizer.checkpoint is 'default'"):
        check_token_space(read_t2s(resolve_t2s(preset), preset), preset, "default")


def test_cli_refuses_a_t2s_of_another_token_space(models: dict[str, Path], tmp_path: Path) -> None:
    from dataengine.cli import main

    recipe = t2s_recipe(str(models["other_space"])).model_dump(mode="json")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    result = CliRunner().invoke(main, ["build", str(path), "--out", str(tmp_path / "out"), "--no-cache"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "t2s:" in lines[0] and "another codebook" in lines[0]
    assert not (tmp_path / "out").exists()


# --- the recipe ------------------------------------------------------------------------------------


def test_recipe_t2s_settings(tmp_path: Path) -> None:
    plain = Recipe(name="plain")
    dumped = yaml.safe_load(plain.dump_yaml())
    assert "t2s" not in dumped and all("tokens" not in (t or {}) for t in dumped["tasks"].values())
    assert not {"t2s_tokens_per_char", "t2s_guard_length_ratio"} & set(metric_names())  # other manifests
    assert {"t2s_tokens_per_char", "t2s_guard_length_ratio"} <= set(metric_names(["t2s", "t2s_guard"]))
    path = tmp_path / "r.yaml"
    path.write_text("name: x\ntasks:\n  instruction: {share: 1.0, tokens: t2s}\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="tasks.instruction.tokens asks for T2S tokens.*no t2s section"):
        load_recipe(path)
    path.write_text("name: x\ntts:\n  voices: [{backend: t2s}]\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="tts.voices.0 asks for T2S tokens"):
        load_recipe(path)
    path.write_text("name: x\nt2s: {model: m, guard: {voice: {backend: t2s}}}\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="t2s.guard: .*needs a TTS backend"):
        load_recipe(path)
    path.write_text("name: x\nt2s: {model: missing.model}\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="t2s.model: file not found: .*missing.model"):
        load_recipe(path)
    (tmp_path / "here.model").write_bytes(b"")
    path.write_text("name: x\nt2s: {model: here.model}\n", encoding="utf-8")
    assert load_recipe(path).t2s.model == str(tmp_path / "here.model")  # against the recipe's folder
    path.write_text("name: x\nt2s: {model: t2s-v1.9-medium-7lang}\n", encoding="utf-8")
    assert load_recipe(path).t2s.model == "t2s-v1.9-medium-7lang"  # a preset stays a name
    multi = {
        "share": 1.0,
        "tokens": "t2s",
        "source": {"kind": "files", "paths": ["x"], "messages_column": "m"},
    }
    from dataengine.tasks import make_tasks

    task = make_tasks(
        Recipe.model_validate({"name": "x", "t2s": {"model": "m"}, "tasks": {"multi_turn": multi}})
    )
    assert (
        task["multi_turn"].preparation().endswith(":t2s") and task["multi_turn"].spoken_origin("k") == "t2s"
    )


# --- builds ----------------------------------------------------------------------------------------


def test_spoken_origin_follows_the_voice_pool_weights() -> None:
    from dataengine.sample import T2S, TTS
    from dataengine.tasks import make_tasks, task_origins

    voices = [{"backend": "piper", "weight": 1.0}, {"backend": "t2s", "weight": 3.0}]
    recipe = Recipe.model_validate({"name": "x", "t2s": {"model": "m"}, "tts": {"voices": voices}})
    task = make_tasks(recipe)["instruction"]
    origins = [task.spoken_origin(f"id{n}") for n in range(400)]
    assert 0.65 < origins.count(T2S) / 400 < 0.85 and set(origins) == {T2S, TTS}
    assert origins == [task.spoken_origin(f"id{n}") for n in range(400)]  # seeded: the same every time
    assert set(task_origins(recipe)) >= {TTS, T2S}
    only = recipe.with_overrides(tts={"voices": [{"backend": "t2s"}]})
    assert TTS not in task_origins(only) and make_tasks(only)["instruction"].spoken_origin("a") == T2S


def test_voice_pool_t2s_build_with_guard(models: dict[str, Path], offline: None, tmp_path: Path) -> None:
    """``backend: t2s`` as the whole voice pool: T2S tokens from the checkpoint in the Hub cache, every
    T2S turn also through the guard's audio path (espeak-ng + the same tokenizer)."""
    guard = {"fraction": 1.0, "min_tokens_per_char": 0.01, "max_tokens_per_char": 50.0}
    guard |= {"min_length_ratio": 0.001, "max_length_ratio": 1000.0, "max_drift_share": 1.0}
    guard |= {"voice": {"backend": "espeak", "voice": "en-us"}}
    recipe = t2s_recipe(HUB_REF, limit=3, guard=guard, tasks={"instruction": {"share": 1.0}})
    recipe = recipe.with_overrides(tts={"voices": [{"backend": "t2s"}]})
    out = tmp_path / "out"
    summary = build(recipe, out, progress=False)
    names = [s.name for s in summary.stages]
    assert names[-2:] == ["t2s", "t2s_guard"] and "tts" not in names
    rows = manifest_rows(out, "samples", "id, prompt, origin, voice, n_sound_tokens, t2s_guard_length_ratio")
    rejects = manifest_rows(out, "rejects", "origin, stage, reason")
    t2s_rows = [r for r in rows if r[2] == "t2s"]
    assert t2s_rows and len(t2s_rows) == len(rows) and all(r[0] == "t2s" for r in rejects)
    assert all(r[3] == f"t2s:{HUB_REF}" and r[5] is not None for r in t2s_rows)  # every one was guarded
    # the shard tokens are the T2S model's own output for that text and turn seed
    model = T2SModel(Path(models["normal"]), batch_size=1)
    import webdataset as wds

    shard_tokens = {}
    for sample in wds.WebDataset(sorted(str(p) for p in (out / "shards").glob("*.tar")), shardshuffle=False):
        shard_tokens[json.loads(sample["json"])["id"]] = np.load(
            __import__("io").BytesIO(sample["tokens.npy"])
        )
    for sample_id, prompt, *_ in t2s_rows:
        expected = model.generate([prompt], [turn_seed(3, sample_id)], temperature=1.0)[0].tokens
        np.testing.assert_array_equal(shard_tokens[sample_id].reshape(-1), expected)
    info = json.loads((out / "build.json").read_text())["t2s"]
    assert info["model"] == HUB_REF and info["kept"] == len(t2s_rows)
    assert {"audio_filters", "tokenizer"} <= set(info["skipped_stages"]) and "t2s" not in info[
        "skipped_stages"
    ]
    assert "t2s_repeats" in info["checks_instead"] and "t2s_rate_drift" in info["checks_instead"]
    assert info["figures"]["t2s_guard_edit_distance"]["n"] == len(t2s_rows)
    from dataengine.publish.card import render_card

    card = render_card(out)
    assert "T2S tokens" in card and "t2s_guard_length_ratio" in card and "audio_filters" in card


@pytest.mark.parametrize(
    ("model", "guard", "reason"),
    [
        ("long", {}, "t2s_too_long"),  # never ends: cut off at the model's limit
        ("repeats", {"min_tokens_per_char": 0.01}, "t2s_repeats"),  # one code over and over
    ],
)
def test_forced_drift_is_rejected(
    models: dict[str, Path], tmp_path: Path, model: str, guard: dict, reason: str
) -> None:
    summary = build(t2s_recipe(str(models[model]), limit=4, guard=guard), tmp_path / "out", progress=False)
    assert summary.kept == 0
    columns = "stage, reason, t2s_cut_off, t2s_repeat_share, n_sound_tokens"
    rejects = manifest_rows(tmp_path / "out", "rejects", columns)
    assert len(rejects) == 4 and all(r[0] == "t2s" for r in rejects)
    if reason == "t2s_too_long":
        assert all(r[1:3] == (reason, 1.0) for r in rejects)
    else:  # a random length may also end a turn at 0-2 tokens (too short) or cut it off (too long)
        repeated = [r for r in rejects if r[4] > 2 and not r[2]]
        assert repeated and all(r[1] == reason and r[3] > 0.9 for r in repeated)


def test_guard_rejects_tokens_far_from_the_audio_path_and_stops(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """One code repeated is in no sense the audio path's mix of codes: the guard's histogram distance
    rejects it (the T2S-only repeat checks are off here); past ``max_drift_share`` the build stops."""
    from dataengine.cache import StageCache

    guard = {"fraction": 1.0, "max_repeat_share": 1.0, "max_run_share": 1.0, "min_tokens_per_char": 0.01}
    guard |= {"min_length_ratio": 0.001, "max_length_ratio": 1000.0, "max_histogram_distance": 0.5}
    guard |= {"voice": {"backend": "espeak", "voice": "en-us"}}
    cache = StageCache(tmp_path / "cache")
    recipe = t2s_recipe(str(models["repeats"]), limit=3, guard={**guard, "max_drift_share": 1.0})
    build(recipe, tmp_path / "out", progress=False, cache=cache)
    rejects = manifest_rows(tmp_path / "out", "rejects", "stage, reason, t2s_guard_histogram_distance")
    assert rejects and all(r[:2] == ("t2s_guard", "t2s_token_drift") and r[2] > 0.5 for r in rejects)
    # the same build with the stop bound (the cache answers: no model runs again)
    stopped = t2s_recipe(str(models["repeats"]), limit=3, guard={**guard, "max_drift_share": 0.5})
    with pytest.raises(StageFailed, match=r"t2s_guard: the T2S drift guard rejected 3 of 3 guarded turns"):
        build(stopped, tmp_path / "out2", progress=False, cache=cache)
    assert not (tmp_path / "out2" / "build.json").exists()  # no build was published


def test_a_text_longer_than_the_model_reads_is_a_reject(models: dict[str, Path]) -> None:
    from dataengine.sample import T2S, Sample
    from dataengine.stage import StageStats
    from dataengine.t2s.stage import T2SStage

    stage = T2SStage.from_recipe(t2s_recipe(str(models["normal"])))
    assert stage is not None
    long, short = (
        Sample.pair(f"s{n}", n, text, "answer") for n, text in enumerate(["word " * 60, "Hi there."])
    )
    for sample in (long, short):
        sample.turns[0].origin, sample.turns[0].key = T2S, sample.id
    stage([long, short], StageStats("t2s"))
    assert long.reject is not None  # 299 bytes: the text is stripped, as T2S reads it
    assert (long.reject.reason, long.reject.value) == ("t2s_text_too_long", 299.0)
    assert short.turns[0].tokens is not None and short.turns[0].voice.startswith("t2s:")


def test_t2s_build_bytes_do_not_depend_on_batching(models: dict[str, Path], tmp_path: Path) -> None:
    """Same recipe and seed -> the same shards and manifest, whether turns run 1 or 4 to a batch."""
    import hashlib

    digests = []
    for n, size in enumerate((1, 4)):
        recipe = t2s_recipe(str(models["normal"]), limit=4, guard={"min_tokens_per_char": 0.01})
        recipe = recipe.with_overrides(
            executor={"batch_size": size}, t2s={**recipe.t2s.model_dump(), "batch_size": size}
        )
        build(recipe, tmp_path / f"out{n}", progress=False)
        files = sorted(
            p
            for p in (tmp_path / f"out{n}").rglob("*")
            if p.is_file() and p.parent.name in ("shards", "manifest")
        )
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files})
    assert digests[0] == digests[1] and any(name.endswith(".tar") for name in digests[0])


def test_build_refuses_other_token_space(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="^t2s: .*another codebook"):
        build(t2s_recipe(str(models["other_space"])), tmp_path / "out", progress=False)
