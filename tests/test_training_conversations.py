"""Every task's conversation layout through the training loader: multi-turn (loss on every assistant
turn), text-only (no sound ids), noise refusals, system turns; and the tiny model trains on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataengine.training.dataset import ShardStream
from dataengine.training.encode import ConversationEncoder
from dataengine.training.shards import ShardError, decode_sample, iter_raw_samples, resolve_shards
from dataengine.training.stream_finetune import run
from omegaconf import OmegaConf
from torchtune.data import Message
from training_fixtures import CONFIGS, tiny_dir, tiny_tokenizer, write_mixed_shards

from dataengine.writers.shards import ShardWriter


def reference(tok, turns, train_on_input: bool) -> tuple[list[int], list[int]]:  # noqa: ANN001
    """torchtune's own ``tokenize_messages`` on the string form: ids and labels."""
    messages = [
        Message(t.role, t.content, masked=t.role != "assistant" and not train_on_input) for t in turns
    ]
    ids, mask = tok.tokenize_messages(messages)
    return ids, [-100 if m else i for i, m in zip(ids, mask, strict=True)]


@pytest.mark.parametrize("with_npy", [True, False])
def test_every_task_encodes_exactly_as_torchtune_on_the_string_form(tmp_path: Path, with_npy: bool) -> None:
    write_mixed_shards(tmp_path, with_npy=with_npy)
    samples = [decode_sample(raw) for url in resolve_shards(tmp_path) for raw in iter_raw_samples(url)]
    assert {s.task for s in samples} == {"multi_turn", "text_only", "noise_refusal", "transcription"}
    tok = tiny_tokenizer()
    sound_range = range(tok.sound_start_id, tok.vocab_size)
    for train_on_input in (False, True):
        encoded = ConversationEncoder(tok, train_on_input=train_on_input).encode_block(samples)
        for sample, (tokens, labels) in zip(samples, encoded, strict=True):
            assert (tokens.tolist(), labels.tolist()) == reference(tok, sample.conversations, train_on_input)
            ids = tokens.tolist()
            if sample.task == "text_only":
                assert not any(i in sound_range for i in ids), sample.id
            else:
                spoken_turns = [t for t in sample.conversations if "<|sound_start|>" in t.content]
                assert ids.count(tok.sound_start_id) == len(spoken_turns) >= 1
            if not train_on_input:  # the loss covers every assistant turn and nothing the user said
                trained = labels[labels != -100].tolist()
                for turn in sample.conversations:
                    answer = tok.encode(turn.content, add_bos=False, add_eos=False)
                    inside = any(trained[i : i + len(answer)] == answer for i in range(len(trained)))
                    assert inside == (turn.role == "assistant"), (sample.id, turn.role)
                assert not set(trained) & set(sound_range)


def test_malformed_conversations_are_one_line_errors_naming_the_member(tmp_path: Path) -> None:
    cases = {
        "no-user": [{"role": "assistant", "content": "hi"}],
        "order": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        "open": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        + [{"role": "user", "content": "c"}],
        "role": [{"role": "robot", "content": "a"}, {"role": "assistant", "content": "b"}],
    }
    writer = ShardWriter(tmp_path / "shards", "train", max_samples=10, max_bytes=1 << 30)
    for key, turns in cases.items():
        writer.add(key, {"json": json.dumps({"id": key, "task": "x", "conversations": turns}).encode()})
    writer.close()
    (url,) = resolve_shards(tmp_path)
    why = {
        "no-user": "conversations turn 0 is 'assistant', expected 'user'",
        "order": "conversations turn 1 is 'user', expected 'assistant'",
        "open": "conversations does not end with an assistant turn",
        "role": "conversations turn 0 is 'robot', expected 'user'",
    }
    for raw in iter_raw_samples(url):
        with pytest.raises(ShardError) as err:
            decode_sample(raw)
        assert str(err.value) == f"{url}: member {raw['__key__']}.json: {why[raw['__key__']]}"


def test_the_tiny_model_trains_on_multi_turn_text_only_and_noise_shards(tmp_path: Path) -> None:
    ids = write_mixed_shards(tmp_path / "mix", n=20, per_shard=5)
    stream = ShardStream(str(tmp_path / "mix"), tiny_tokenizer(), max_seq_len=256, shuffle_buffer=1, epochs=1)
    packed = [i for item in stream for i in item["sample_ids"]]
    assert sorted(packed) == ids  # every task's samples reach the packs, none twice
    out = tmp_path / "run"
    cfg = OmegaConf.load(CONFIGS / "tiny_cpu.yaml")
    cfg.merge_with(
        {"data": str(tmp_path / "mix"), "tiny_dir": str(tiny_dir()), "output_dir": str(out), "max_steps": 6}
    )
    cfg.save_every_n_steps = 6
    run(cfg)
    text = "".join(p.read_text() for p in sorted((out / "logs").glob("*.txt")))
    losses = [float(line.split("loss:")[1].split()[0]) for line in text.splitlines() if "loss:" in line]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < np.mean(losses[:2])  # it learns something from them
    records = (out / "sample_ids.rank0.jsonl").read_text().splitlines()
    assert {i for line in records for i in json.loads(line)["ids"]} == set(ids)  # every task trained on
