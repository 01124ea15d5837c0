"""The shipped Ichigo mix, built for real (Piper, the noise packages, Whisper tiny.en + codebook): every
task in its exact place, in Ichigo's layout; and long spoken prompts against the token limit."""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
import webdataset as wds
import yaml

from dataengine.cache import StageCache
from dataengine.formatting import SOUND_END, SOUND_START, TRANSCRIPTION_REQUESTS, parse_sound_string
from dataengine.pipeline import build
from dataengine.recipe import load_recipe
from dataengine.tasks.mixer import TaskMixer
from dataengine.tasks.refusals import REFUSALS

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 24


@pytest.fixture(scope="module")
def mix_recipe():  # noqa: ANN201 - a Recipe
    recipe = load_recipe(ROOT / "recipes" / "ichigo-mix.yaml")
    return recipe.with_overrides(limit=LIMIT, asr={"model": "none"})  # the ASR round trip is tested elsewhere


@pytest.fixture(scope="module")
def mix_dir(tmp_path_factory: pytest.TempPathFactory, mix_recipe) -> Path:  # noqa: ANN001
    out = tmp_path_factory.mktemp("mix") / "ichigo-mix"
    build(mix_recipe, out, progress=False, cache=StageCache())
    return out


def written(out: Path) -> list[dict]:
    """Every sample in writing order (shards in name order, members in tar order)."""
    urls = sorted(str(p) for p in (out / "shards").glob("*.tar"))
    rows = []
    for row in wds.WebDataset(urls, shardshuffle=False):
        record = json.loads(row["json"])
        record["codes"] = np.load(io.BytesIO(row["tokens.npy"])).tolist()
        record["has_flac"] = "flac" in row
        rows.append(record)
    return rows


def sound_codes(content: str) -> list[int]:
    return parse_sound_string(content[content.index(SOUND_START) :]).tolist()


def test_every_task_in_its_exact_place(mix_dir: Path, mix_recipe) -> None:  # noqa: ANN001
    rows = written(mix_dir)
    tasks = [r["task"] for r in rows]
    shares = {name: task.share for name, task in mix_recipe.tasks.enabled().items()}
    mixer = TaskMixer(shares, mix_recipe.seed)
    assert tasks == [mixer.next_task() for _ in tasks]  # the exact pattern, whatever was rejected
    assert set(tasks) == set(shares) and len(rows) >= 20  # one whole block: 12/4/2/1/1
    info = json.loads((mix_dir / "build.json").read_text())
    rejected = duckdb.sql(
        f"select count(*) from read_parquet('{mix_dir}/manifest/rejects.parquet')"
    ).fetchall()
    assert info["ended"] == "limit" and len(rows) + rejected[0][0] == LIMIT


def test_each_task_writes_ichigo_s_layout(mix_dir: Path) -> None:
    conversations = [
        json.loads(line)["messages"] for line in (ROOT / "recipes/data/conversations.jsonl").open()
    ]
    for r in written(mix_dir):
        turns, speech, codes = r["conversations"], r["speech"], r["codes"]
        roles = [t["role"] for t in turns]
        assert roles == ["user", "assistant"] * (len(turns) // 2), r["id"]
        spoken = [t["content"] for t in turns if SOUND_START in t["content"]]
        assert (
            sum(len(sound_codes(c)) for c in spoken) == len(codes) == sum(s["n_sound_tokens"] for s in speech)
        )
        assert [c for content in spoken for c in sound_codes(content)] == codes  # tokens.npy in turn order
        if r["task"] == "transcription":  # Ichigo's rule: the text before the sound is one of its requests
            user = turns[0]["content"]
            assert user[: user.index(SOUND_START)].strip() in TRANSCRIPTION_REQUESTS
            assert turns[1]["content"] == speech[0]["text"] and user.endswith(SOUND_END)
        elif r["task"] == "instruction":
            assert turns[0]["content"].startswith(SOUND_START) and speech[0]["origin"] == "tts"
        elif r["task"] == "noise_refusal":
            assert turns[1]["content"] in REFUSALS and len(codes) > 0
            assert speech[0]["origin"] in ("noise", "tokens") and speech[0]["text"] == ""
            assert r["has_flac"] == (speech[0]["origin"] == "noise")  # drawn tokens have no audio
        elif r["task"] == "multi_turn":
            assert len(spoken) == roles.count("user") >= 2 and len({s["voice"] for s in speech}) >= 1
            assert all(t["content"].startswith(SOUND_START) for t in turns if t["role"] == "user")
        else:
            assert r["task"] == "text_only" and not spoken and not codes and not r["has_flac"]
            assert [{"role": t["role"], "content": t["content"]} for t in turns] in conversations


def test_ichigo_s_tokenizer_rules_and_the_training_loader_take_every_sample(mix_dir: Path) -> None:
    from dataengine.training.encode import ConversationEncoder
    from dataengine.training.shards import decode_sample, iter_raw_samples, resolve_shards
    from dataengine.training.tokenizer import sound_llama3_tokenizer
    from training_fixtures import tiny_dir

    from dataengine.ichigo import check_conversation

    samples = [decode_sample(raw) for url in resolve_shards(mix_dir) for raw in iter_raw_samples(url)]
    for sample in samples:
        turns = [{"role": t.role, "content": t.content} for t in sample.conversations]
        check = check_conversation(turns, sample.task)
        assert check.ok, (sample.id, check.problems)  # nothing Ichigo's tokenizer would drop
    tokenizer = sound_llama3_tokenizer(
        str(tiny_dir() / "tokenizer.model"), str(tiny_dir() / "special_tokens.json")
    )
    encoded = ConversationEncoder(tokenizer).encode_block(samples)
    assert len(encoded) == len(samples) and all(len(ids) == len(labels) > 0 for ids, labels in encoded)


def test_inspect_and_card_show_every_task(mix_dir: Path, tmp_path: Path) -> None:
    from dataengine.inspect import summarize
    from dataengine.publish.card import render_card

    summary = summarize(mix_dir)
    for task in ("instruction", "transcription", "noise_refusal", "multi_turn", "text_only"):
        assert f"  {task:<14} " in summary
    card = render_card(mix_dir, dest=tmp_path)
    header = yaml.safe_load(card.split("---")[1])
    infos = header["dataset_info"]
    default = next(i for i in infos if i["config_name"] == "default") if isinstance(infos, list) else infos
    json_feature = next(f for f in default["features"] if f["name"] == "json")
    assert {f["name"] for f in json_feature["struct"]} >= {"conversations", "speech", "task"}
    assert "| multi_turn | 1 |" in card and "| text_only | 1 |" in card
    assert "`asterisk-moh-opsound-g722` (CC-BY-SA-3.0)" in card  # the noise recordings' licence


@pytest.mark.slow
def test_two_workers_give_identical_bytes(mix_dir: Path, mix_recipe, tmp_path: Path) -> None:  # noqa: ANN001
    parallel = tmp_path / "parallel"
    build(mix_recipe, parallel, workers=2, progress=False)
    for path in sorted(mix_dir.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (parallel / path.relative_to(mix_dir)).read_bytes(), path


def test_long_spoken_prompts_and_the_token_limit(tmp_path: Path) -> None:
    """Joined chatterbot prompts speak for 10-20 s; those over the limit (400 tokens = 16 s) are rejected
    with their count, the others kept whole."""
    from dataengine.recipe import Recipe

    recipe = Recipe.model_validate(
        {
            "name": "long",
            "seed": 5,
            "limit": 6,
            "source": {"kind": "chatterbot", "categories": ["ai", "computers", "science", "history"]},
            "tasks": {"transcription": {"share": 1.0, "long_prompts": {"min_s": 12, "max_s": 24}}},
            "text_filters": {"length_margin": 3.0},  # let the token limit decide, not the text estimate
            "tokenizer": {"max_sound_tokens": 400},
        }
    )
    out = tmp_path / "long"
    build(recipe, out, progress=False, cache=StageCache())
    con = duckdb.connect()
    kept = con.execute(
        f"select n_sound_tokens, duration_s, id from read_parquet('{out}/manifest/samples.parquet')"
    ).fetchall()
    rejected = con.execute(
        f"select reason, value, duration_s from read_parquet('{out}/manifest/rejects.parquet')"
    ).fetchall()
    assert len(kept) + len(rejected) == 6
    assert all(reason == "too_many_sound_tokens" and value > 400 for reason, value, _ in rejected)
    assert all(abs(value - 25 * seconds) <= 1 for _, value, seconds in rejected)  # the count, measured
    assert all(tokens <= 400 and 8.0 <= seconds <= 16.1 for tokens, seconds, _ in kept)
    assert all("-j" in sample_id for _, _, sample_id in kept)  # every one joined from several prompts
    assert kept and rejected  # targets of 12-24 s straddle the 16 s limit
    durations = [s for _, s, _ in kept] + [s for _, _, s in rejected]
    assert max(durations) - min(durations) > 3.0  # a spread of lengths, not one


def test_the_tiny_model_trains_on_the_ichigo_mix_build(mix_dir: Path, tmp_path: Path) -> None:
    """The torchtune recipe streams the mix build's shards as they are and the loss falls; the stream
    packs every sample of every task."""
    from dataengine.training.dataset import ShardStream
    from dataengine.training.stream_finetune import run
    from omegaconf import OmegaConf
    from training_fixtures import CONFIGS, tiny_dir, tiny_tokenizer

    out = tmp_path / "run"
    cfg = OmegaConf.load(CONFIGS / "tiny_cpu.yaml")
    cfg.merge_with(
        {"data": str(mix_dir), "tiny_dir": str(tiny_dir()), "output_dir": str(out), "max_steps": 6}
    )
    cfg.save_every_n_steps = 6
    run(cfg)
    text = "".join(p.read_text() for p in sorted((out / "logs").glob("*.txt")))
    losses = [float(line.split("loss:")[1].split()[0]) for line in text.splitlines() if "loss:" in line]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    tasks = {r["id"]: r["task"] for r in written(mix_dir)}
    trained = [
        i
        for line in (out / "sample_ids.rank0.jsonl").read_text().splitlines()
        for i in json.loads(line)["ids"]
    ]
    assert trained and set(trained) <= set(tasks)
    # The training stream over the whole build packs every sample of every task, none twice.
    stream = ShardStream(str(mix_dir), tiny_tokenizer(), max_seq_len=256, shuffle_buffer=1, epochs=1)
    packed = [i for item in stream for i in item["sample_ids"]]
    assert sorted(packed) == sorted(tasks)
