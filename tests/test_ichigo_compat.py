"""Compatibility with Ichigo's own code and checkpoints: its tokenizer's rules over a real build, the
sound-token ids of its released checkpoints, and its dataset layout (``dataengine export``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from build_facts import ManifestFacts
from click.testing import CliRunner
from dataengine.training.dataset import ShardStream
from dataengine.training.encode import ConversationEncoder
from dataengine.training.shards import decode_sample, iter_raw_samples, load_codes, resolve_shards
from dataengine.training.stream_finetune import run
from dataengine.training.tiny import TINY_MODEL
from dataengine.training.tokenizer import ichigo_special_tokens, load_special_tokens, sound_llama3_tokenizer
from omegaconf import OmegaConf
from torchtune.models.llama3 import llama3
from torchtune.models.llama3._tokenizer import LLAMA3_SPECIAL_TOKENS, RESERVED_TOKENS
from training_fixtures import CONFIGS, conversations, tiny_base_model, tiny_dir, write_mixed_shards

from dataengine.cli import main
from dataengine.formatting import TRANSCRIPTION_REQUESTS, sound_string
from dataengine.ichigo import ICHIGO_REQUESTS, check_conversation, read_turn

OLD_REQUESTS = (  # dataengine's requests before issue 13: Ichigo's tokenizer dropped every one of them
    "Transcribe the following audio clip.",
    "Please write down exactly what is said in this recording.",
    "Repeat the speech in this audio as text.",
    "What does the speaker say? Give the exact words.",
    "Convert this spoken audio into written text.",
)


def turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in pairs]


# -- the tokenizer's rules ------------------------------------------------------------------------


def test_every_sample_of_a_real_build_passes_ichigos_tokenizer_rules(
    small_build_dir: Path, small_facts: ManifestFacts
) -> None:
    raws = [raw for url in resolve_shards(small_build_dir) for raw in iter_raw_samples(url)]
    assert [json.loads(raw["json"])["id"] for raw in raws] == small_facts.ids  # every kept sample
    sound_tokenizer = _tiny()
    encoded = ConversationEncoder(sound_tokenizer).encode_block([decode_sample(raw) for raw in raws])
    seen = set()
    for raw, (tokens, _) in zip(raws, encoded, strict=True):
        meta = json.loads(raw["json"])
        check = check_conversation(meta["conversations"], meta["task"])
        assert check.ok, (meta["id"], check.problems)
        user = check.readings[0]
        assert user.codes == tuple(load_codes(raw["tokens.npy"]).tolist())  # the codes it reads = ours
        ids = tokens.tolist()
        start = ids.index(sound_tokenizer.sound_start_id)
        assert ids[start + 1 : start + 1 + len(user.codes)] == sound_tokenizer.sound_ids(user.codes)[1:-1]
        if meta["task"] == "transcription":
            assert user.kind == "transcription" and user.text in TRANSCRIPTION_REQUESTS
        else:
            assert user.kind == "sound" and not user.text
        seen.add(meta["task"])
    assert seen == set(small_facts.tasks) == {"instruction", "transcription"}
    assert set(TRANSCRIPTION_REQUESTS) == set(ICHIGO_REQUESTS)


def test_every_task_written_by_hand_passes_and_the_checker_sees_what_ichigo_drops() -> None:
    for task, conversation, _ in conversations(10):
        check = check_conversation(conversation, task)
        assert check.ok, (task, check.problems)
    sound = sound_string([5, 6, 7])
    for old in OLD_REQUESTS:  # the finding: today's five strings all fail the prompt rule
        reading = read_turn(f"{old}\n{sound}")
        assert reading.kind == "sound" and reading.dropped == (old,) and reading.codes == (5, 6, 7)
    bad = {
        "drops 'Transcribe this.'": (turns(("user", f"Transcribe this.\n{sound}"), ("assistant", "x")), None),
        "drops 'and then some'": (turns(("user", f"{sound} and then some"), ("assistant", "x")), None),
        "without a recognised request": (turns(("user", sound), ("assistant", "x")), "transcription"),
        "text_only turn carries sound": (turns(("user", sound), ("assistant", "x")), "text_only"),
        "fewer than two user turns": (turns(("user", sound), ("assistant", "x")), "multi_turn"),
        "instruction user turn is text": (turns(("user", "hello"), ("assistant", "x")), "instruction"),
        "read as sound, not as text": (turns(("user", sound), ("assistant", sound)), None),
        "not in Ichigo's vocabulary": (turns(("user", sound_string([513])), ("assistant", "x")), None),
        "more than one sound span": (turns(("user", sound + sound), ("assistant", "x")), None),
        "outside a sound span": (turns(("user", "<|sound_0001|> hi"), ("assistant", "x")), None),
        "empty content": (turns(("user", sound), ("assistant", " ")), None),
        "the last turn is not an assistant turn": (turns(("user", sound)), None),
        "turn 1 is 'user' where 'assistant' belongs": (turns(("user", sound), ("user", sound)), None),
    }
    for why, (conversation, task) in bad.items():
        problems = check_conversation(conversation, task).problems
        assert any(why in p for p in problems), (why, problems)


def test_the_fork_before_2025_matched_requests_unstripped() -> None:
    """Until facbf82 the text before the sound had to equal a request exactly (six end in a space), so
    dataengine's ``request + newline`` layout passes only the current rule."""
    sound = sound_string([1])
    current = [read_turn(f"{r}\n{sound}") for r in ICHIGO_REQUESTS]
    legacy = [read_turn(f"{r}\n{sound}", legacy=True) for r in ICHIGO_REQUESTS]
    assert all(r.kind == "transcription" and r.lossless for r in current)
    assert all(r.kind == "sound" and r.dropped for r in legacy)
    glued = [read_turn(f"{r} {sound}", legacy=True) for r in ICHIGO_REQUESTS]
    assert sum(r.kind == "transcription" for r in glued) == 6


# -- token ids ------------------------------------------------------------------------------------


def test_the_ichigo_layout_puts_sound_tokens_at_the_ids_of_ichigos_checkpoints() -> None:
    """Published layout, Llama 3 (BPE 128000): janhq/torchtune ``_tokenizer_custom.py``:
    ``SPECIAL_SOUND_TOKENS`` = 128013 + len(RESERVED_TOKENS) (+0, +1); ``llama3_s_tiktoken.py``: sound
    codes from len(mergeable_ranks) + len(special tokens incl. the two markers) = 128000 + 258;
    ``llama3_1_s_8b``: vocab_size 128_771 (v0.3/v0.4, 513 codes)."""
    specials = ichigo_special_tokens(dict(LLAMA3_SPECIAL_TOKENS), base_vocab_size=128000, n_codes=513)
    assert specials["<|sound_start|>"] == 128013 + len(RESERVED_TOKENS) == 128256
    assert specials["<|sound_end|>"] == 128257
    assert specials["<|sound_0000|>"] == 128000 + len(LLAMA3_SPECIAL_TOKENS) + 2 == 128258
    assert specials["<|sound_0511|>"] == 128769 and specials["<|sound_0512|>"] == 128770
    assert max(specials.values()) + 1 == 128_771
    assert len(set(specials.values())) == len(specials)  # torchtune's <|image|> no longer clashes
    assert specials["<|image|>"] == 128011  # where the fork's torchtune kept it in 2024
    moved = {t for t in LLAMA3_SPECIAL_TOKENS if specials[t] != LLAMA3_SPECIAL_TOKENS[t]}
    assert moved == {"<|image|>"}
    assert ichigo_special_tokens(specials, 128000, 513) == specials  # idempotent


def test_the_hub_tokenizer_procedure_gives_the_same_ids() -> None:
    """homebrewltd/ichigo README: ``add_special_tokens`` of the two markers onto Llama 3.1's tokenizer,
    then ``add_tokens`` of 513 sound tokens; run here with the real ``tokenizers`` library on a
    Llama 3.1-sized vocabulary (128,000 words + the 256 special tokens under their 3.1 names)."""
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.models import WordLevel

    llama31 = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>"]
    llama31 += ["<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>"]
    llama31 += ["<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
    llama31 += [f"<|reserved_special_token_{n}|>" for n in range(3, 248)]
    hf = Tokenizer(WordLevel({f"w{i}": i for i in range(128000)}, unk_token="w0"))
    hf.add_special_tokens([AddedToken(t, special=True) for t in llama31])
    assert hf.get_vocab_size() == 128256
    hf.add_special_tokens([AddedToken(t, special=True) for t in ("<|sound_start|>", "<|sound_end|>")])
    hf.add_tokens([f"<|sound_{n:04d}|>" for n in range(513)])
    published = {t["content"]: t["id"] for t in json.loads(hf.to_str())["added_tokens"]}
    ours = ichigo_special_tokens(dict(LLAMA3_SPECIAL_TOKENS), 128000, 513)
    sound = {t: i for t, i in published.items() if t.startswith("<|sound_")}
    assert len(sound) == 515 and sound == {t: i for t, i in ours.items() if t.startswith("<|sound_")}
    from_hub = ichigo_special_tokens(published, 128000, 513)  # a tokenizer.json map is accepted as is
    assert {t: from_hub[t] for t in sound} == sound and "<|image|>" in from_hub
    assert len(set(from_hub.values())) == len(from_hub)


def _tiny(layout: str = "append"):  # noqa: ANN202
    files = (str(tiny_dir() / "tokenizer.model"), str(tiny_dir() / "special_tokens.json"))
    return sound_llama3_tokenizer(*files, layout=layout)


def test_resize_vocab_ichigo_layout_then_continue_an_ichigo_checkpoint(tmp_path: Path) -> None:
    src = tmp_path / "base"
    state = tiny_base_model(src)  # 320 BPE + 257 specials (torchtune's <|image|> past the block)
    torch.save(state, src / "model.pt")
    cli = CliRunner()
    result = cli.invoke(
        main, ["train", "resize-vocab", str(src), str(tmp_path / "ichigo"), "--layout", "ichigo"]
    )
    assert result.exit_code == 0, result.output
    assert "vocabulary 577 -> 1091 rows (sound tokens from id 576, Ichigo layout)" in result.output
    specials = load_special_tokens(tmp_path / "ichigo" / "special_tokens.json")
    assert (specials["<|sound_start|>"], specials["<|sound_0000|>"], specials["<|image|>"]) == (576, 578, 331)
    tok = sound_llama3_tokenizer(
        str(tiny_dir() / "tokenizer.model"), str(tmp_path / "ichigo" / "special_tokens.json")
    )
    assert (tok.sound_start_id, tok.sound_code_base, tok.vocab_size) == (576, 578, 1091)
    assert tok.special_tokens == _tiny("ichigo").special_tokens  # the config-only route: the same ids

    # A released checkpoint has Ichigo's rows already: copied, not grown. (A real one needs no
    # --special-tokens: torchtune's Llama 3 map is the default; the tiny one names its own.)
    released = tmp_path / "released"
    released.mkdir()
    shutil.copy(tmp_path / "ichigo" / "model.pt", released / "model.pt")
    args = [str(released), str(tmp_path / "cont"), "--layout", "ichigo"]
    result = cli.invoke(
        main, ["train", "resize-vocab", *args, "--special-tokens", str(src / "special_tokens.json")]
    )
    assert result.exit_code == 0 and "vocabulary 1091 -> 1091 rows" in result.output, result.output
    again = torch.load(tmp_path / "cont" / "model.pt", weights_only=True)
    before = torch.load(released / "model.pt", weights_only=True)
    assert all(torch.equal(again[k], v) for k, v in before.items())
    assert load_special_tokens(tmp_path / "cont" / "special_tokens.json") == specials

    # and the tiny training recipe continues it on mixed shards with those ids
    write_mixed_shards(tmp_path / "mix", n=10, per_shard=5)
    for name in ("tokenizer.model",):
        shutil.copy(tiny_dir() / name, tmp_path / "cont" / name)
    cfg = OmegaConf.load(CONFIGS / "tiny_cpu.yaml")
    cfg.merge_with({"data": str(tmp_path / "mix"), "tiny_dir": str(tmp_path / "cont")})
    cfg.merge_with({"output_dir": str(tmp_path / "run"), "max_steps": 2, "save_every_n_steps": 2})
    run(cfg)
    trained = torch.load(tmp_path / "run" / "epoch_2" / "model-00001-of-00001.bin", weights_only=True)
    llama3(vocab_size=1091, **TINY_MODEL).load_state_dict(trained)  # strict: Ichigo's row count kept
    item = next(iter(ShardStream(str(tmp_path / "mix"), tok, max_seq_len=256, shuffle_buffer=1, epochs=1)))
    sound = item["tokens"][item["tokens"] >= 576]
    assert 576 in sound and 577 in sound and sound.max() < 1091 and 331 not in item["tokens"]

    # an append-layout checkpoint is not silently relabelled
    appended = tmp_path / "appended"
    assert cli.invoke(main, ["train", "resize-vocab", str(src), str(appended)]).exit_code == 0
    result = cli.invoke(
        main, ["train", "resize-vocab", str(appended), str(tmp_path / "x"), "--layout", "ichigo"]
    )
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "Ichigo's layout puts it at" in result.output


# -- dataset layout -------------------------------------------------------------------------------

ICHIGO_FEATURES = [  # homebrewltd/instruction-speech-whispervq-v2 card, dataset_info.features
    ("index", "int64"),
    ("tokens", "list<element: int64>"),
    ("text_prompt", "string"),
    ("answer", "string"),
    ("length", "int64"),
    ("prompt", "string"),
    ("conversations", "list<element: struct<content: string, role: string>>"),
]


def test_export_ichigo_writes_their_columns_and_datasets_reads_it_back(
    small_build_dir: Path, small_facts: ManifestFacts, tmp_path: Path
) -> None:
    dest = tmp_path / "ichigo"
    result = CliRunner().invoke(
        main, ["export", str(small_build_dir), "--format", "ichigo", "--out", str(dest)]
    )
    assert result.exit_code == 0, result.output
    data = dest / "data" / "train-00000-of-00001.parquet"
    kept = small_facts.kept
    assert f"wrote {data}: {kept} rows" in result.output
    schema = pq.read_schema(data)
    assert [(f.name, str(f.type).replace("item", "element")) for f in schema][:7] == ICHIGO_FEATURES
    assert schema.names[7:] == ["id", "task"]

    import datasets

    loaded = datasets.load_dataset(str(dest), split="train")
    assert list(loaded["id"]) == small_facts.ids and loaded.column_names[:7] == [
        n for n, _ in ICHIGO_FEATURES
    ]
    shards = {
        json.loads(r["json"])["id"]: r
        for url in resolve_shards(small_build_dir)
        for r in iter_raw_samples(url)
    }
    for row in loaded:
        raw = shards[row["id"]]
        meta = json.loads(raw["json"])
        assert row["conversations"] == [
            {"content": t["content"], "role": t["role"]} for t in meta["conversations"]
        ]
        assert row["tokens"] == load_codes(raw["tokens.npy"]).tolist()
        assert row["prompt"] == sound_string(row["tokens"]) and row["task"] == meta["task"]
        spoken_text = meta["speech"][0]["text"]  # schema.SpokenTurnRecord: the words spoken
        assert row["answer"] == meta["conversations"][1]["content"] and row["text_prompt"] == spoken_text
        assert row["index"] == meta["index"] and row["length"] == len(spoken_text)
        assert check_conversation(row["conversations"], row["task"]).ok
    # what Ichigo's finetune config does with it: chat_dataset over `conversations`, openai style
    from torchtune.datasets import chat_dataset

    sft = chat_dataset(
        _tiny(),
        source="parquet",
        data_files=str(data),
        split="train",
        conversation_column="conversations",
        conversation_style="openai",
        train_on_input=True,
    )
    assert len(sft) == kept and all(_tiny().sound_start_id in sft[n]["tokens"] for n in range(kept))
    # streamed in row groups; same build -> same bytes
    again = tmp_path / "again.parquet"
    assert (
        CliRunner()
        .invoke(main, ["export", str(small_build_dir), "--format", "ichigo", "--out", str(again)])
        .exit_code
        == 0
    )
    assert again.read_bytes() == data.read_bytes()


def test_export_streams_row_groups_and_covers_every_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataengine.export import ichigo as exporter

    build = _fake_build(tmp_path / "mix", n=23)
    monkeypatch.setattr(exporter, "ROW_GROUP", 5)
    path, rows = exporter.export_ichigo(build, tmp_path / "out.parquet")
    meta = pq.ParquetFile(path).metadata
    assert rows == 23 and meta.num_rows == 23 and meta.num_row_groups == 5
    table = pq.read_table(path)
    tasks = table.column("task").to_pylist()
    assert set(tasks) == {"multi_turn", "text_only", "noise_refusal", "transcription"}
    for task, tokens, prompt in zip(
        tasks, table.column("tokens").to_pylist(), table.column("prompt").to_pylist(), strict=True
    ):
        assert (task == "text_only") == (tokens == [] and prompt == "")


def _fake_build(out: Path, n: int) -> Path:
    """Hand-written shards plus a manifest in the build's schema and the completion mark."""
    import pyarrow as pa

    from dataengine.writers.manifest import REJECT_COLUMNS, SAMPLE_COLUMNS

    ids = write_mixed_shards(out, n=n, per_shard=5)
    known = {"id": ids, "index": list(range(n)), "shard": [f"train-{k // 5:06d}.tar" for k in range(n)]}
    samples = {name: pa.array(known.get(name, [None] * n), kind) for name, kind in SAMPLE_COLUMNS}
    (out / "manifest").mkdir()
    pq.write_table(pa.table(samples), out / "manifest" / "samples.parquet")
    rejects = {name: pa.array([], kind) for name, kind in REJECT_COLUMNS}
    pq.write_table(pa.table(rejects), out / "manifest" / "rejects.parquet")
    (out / "build.json").write_text("{}")
    return out


def test_export_bad_input_is_one_line_exit_2(small_build_dir: Path, tmp_path: Path) -> None:
    cli = CliRunner()

    def fails(*args: str) -> str:
        result = cli.invoke(main, ["export", *args])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        return result.output.strip()

    assert "not a dataengine build" in fails(str(tmp_path / "nope"), "--format", "ichigo")
    assert "--format is required (known: ichigo)" in fails(str(small_build_dir))
    assert "unknown export format 'csv' (known: ichigo)" in fails(str(small_build_dir), "--format", "csv")
    assert "inside the build folder" in fails(
        str(small_build_dir), "--format", "ichigo", "--out", str(small_build_dir / "x")
    )
    target = tmp_path / "taken.parquet"
    target.write_text("someone else's")
    assert "exists (pass --overwrite" in fails(
        str(small_build_dir), "--format", "ichigo", "--out", str(target)
    )
    assert target.read_text() == "someone else's"
    # a build whose requests Ichigo drops (dataengine's old strings) is refused, nothing written
    build = _fake_build(tmp_path / "old", n=5)
    shards = resolve_shards(build)
    from dataengine.writers.shards import ShardWriter

    raws = [raw for url in shards for raw in iter_raw_samples(url)]
    writer = ShardWriter(build / "shards", "train", max_samples=5, max_bytes=1 << 30)
    for raw in raws:
        meta = json.loads(raw["json"])
        if meta["task"] == "transcription":
            content = meta["conversations"][0]["content"]
            meta["conversations"][0]["content"] = OLD_REQUESTS[0] + content[content.index("\n") :]
        writer.add(meta["id"], {"json": json.dumps(meta).encode(), "tokens.npy": raw["tokens.npy"]})
    writer.close()
    out = tmp_path / "old-ichigo"
    line = fails(str(build), "--format", "ichigo", "--out", str(out))
    assert (
        "Ichigo's tokenizer would misread it" in line
        and "drops 'Transcribe the following audio clip.'" in line
    )
    assert not any(p.is_file() for p in out.rglob("*"))
