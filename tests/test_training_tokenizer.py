"""Sound tokens are single ids after every existing id; codes and their string form give the same ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from build_facts import ManifestFacts
from dataengine.training.encode import ConversationEncoder, tokenize_conversation
from dataengine.training.shards import (
    ShardError,
    ShardSample,
    Turn,
    decode_sample,
    iter_raw_samples,
    resolve_shards,
)
from dataengine.training.tokenizer import SOUND_END, SOUND_START, sound_llama3_tokenizer, with_sound_tokens
from torchtune.data import Message
from torchtune.models.llama3._tokenizer import LLAMA3_SPECIAL_TOKENS, Llama3Tokenizer
from training_fixtures import tiny_dir, tiny_tokenizer

from dataengine.formatting import sound_string


def test_sound_ids_follow_every_llama3_id_without_clashes() -> None:
    specials = with_sound_tokens(dict(LLAMA3_SPECIAL_TOKENS), base_vocab_size=128000, n_codes=513)
    assert LLAMA3_SPECIAL_TOKENS["<|image|>"] == 128256  # torchtune's stock map: where Ichigo starts
    assert specials[SOUND_START] == 128257 and specials[SOUND_END] == 128258
    assert specials["<|sound_0000|>"] == 128259 and specials["<|sound_0512|>"] == 128771
    assert len(set(specials.values())) == len(specials)  # no two tokens share an id
    assert with_sound_tokens(specials, 128000, 513) == specials  # already there: kept as is


def test_codes_and_string_form_encode_to_the_same_single_ids() -> None:
    tok = tiny_tokenizer()
    codes = np.array([0, 42, 511, 7], dtype=np.int16)
    ids = tok.sound_ids(codes)
    assert ids == tok.encode(sound_string(codes), add_bos=False, add_eos=False)
    assert len(ids) == len(codes) + 2
    assert min(ids) >= tok.base_vocab_size and max(ids) == tok.vocab_size - 1
    assert tok.decode(ids, skip_special_tokens=False) == sound_string(codes)
    text = "Transcribe this.\n" + sound_string(codes)
    assert tok.encode(text, False, False) == tok.encode("Transcribe this.\n", False, False) + ids


def test_every_built_sample_tokenizes_like_torchtune_on_its_string_form(
    small_build_dir: Path, small_facts: ManifestFacts
) -> None:
    tok = tiny_tokenizer()
    samples = [decode_sample(raw) for url in resolve_shards(small_build_dir) for raw in iter_raw_samples(url)]
    assert [s.id for s in samples] == small_facts.ids
    assert {s.task for s in samples} == {"instruction", "transcription"}
    for sample in samples:
        user, assistant = (m.content for m in sample.conversations)
        messages = [Message("user", user, masked=True), Message("assistant", assistant, masked=False)]
        want_tokens, want_mask = tok.tokenize_messages(messages)
        tokens, mask = tokenize_conversation(tok, sample, train_on_input=False)
        assert (tokens, mask) == (want_tokens, want_mask), sample.id
        start = tokens.index(tok.sound_start_id)
        assert (
            tokens[start + 1 : start + 1 + len(sample.codes)] == (sample.codes + tok.sound_code_base).tolist()
        )
        for text in (assistant, user.split("<|sound_start|>")[0]):  # plain text: exactly Llama 3's ids
            assert tok.encode(text) == Llama3Tokenizer.encode(tok, text)
        messages[0] = Message("user", user, masked=False)
        assert tokenize_conversation(tok, sample, train_on_input=True) == tok.tokenize_messages(messages)
        assert sum(tokenize_conversation(tok, sample, train_on_input=True)[1]) == 2  # only bos and eos


def _sample(user: str, answer: str, codes: list[int], n: int) -> ShardSample:
    turns = [Turn(role="user", content=user), Turn(role="assistant", content=answer)]
    return ShardSample(f"s{n}", "x", turns, np.array(codes, dtype=np.int16), "shard.tar")


def test_a_block_encodes_each_sample_exactly_as_torchtune_does_on_its_own() -> None:
    """One tiktoken call per block: edge cases where joining texts could leak across samples."""
    tok = tiny_tokenizer()
    codes = [3, 1, 4, 1, 5]
    cases = [  # (request before, request after, answer)
        ("Transcribe the following audio clip.\n", "", "are you interested in history"),
        ("  spaces around  ", "   ", "  trailing space  "),
        ("", "\n\nafter the sound\n", ""),
        ("a<|eot_id|>b ", "", "the separator <|eot_id|> as plain text"),
        ("", "", "sound text <|sound_0007|> in an answer"),
        ("x" * 40, "", "y\n\n\n"),
    ]
    samples = [
        _sample(f"{before}{sound_string(codes)}{after}", answer, codes, n)
        for n, (before, after, answer) in enumerate(cases)
    ]
    samples.append(_sample("no sound span at all?", "fine.", [], len(samples)))
    for train_on_input in (False, True):
        encoder = ConversationEncoder(tok, train_on_input=train_on_input)
        for block in (samples, samples[:3] + samples[-1:], samples[3:]):  # fallback (odd texts), joined
            for sample, (tokens, labels) in zip(block, encoder.encode_block(block), strict=True):
                user, answer = (t.content for t in sample.conversations)
                want, mask = tok.tokenize_messages(
                    [Message("user", user, masked=not train_on_input), Message("assistant", answer)]
                )
                assert tokens.tolist() == want, sample.id
                assert labels.tolist() == [-100 if m else t for t, m in zip(want, mask, strict=True)]
    files = (str(tiny_dir() / "tokenizer.model"), str(tiny_dir() / "special_tokens.json"))
    short = sound_llama3_tokenizer(*files, max_seq_len=12)  # torchtune's truncation: head, then eos
    for sample, (tokens, labels) in zip(
        samples, ConversationEncoder(tok, 12).encode_block(samples), strict=True
    ):
        user, answer = (t.content for t in sample.conversations)
        want, mask = short.tokenize_messages(
            [Message("user", user, masked=True), Message("assistant", answer)]
        )
        assert tokens.tolist() == want
        assert labels.tolist() == [-100 if m else t for t, m in zip(want, mask, strict=True)]


def test_bad_codes_and_mismatched_spans_name_the_member() -> None:
    encoder = ConversationEncoder(tiny_tokenizer())
    good = _sample(f"hi {sound_string([1, 2])}", "ok", [1, 2], 0)
    with pytest.raises(
        ShardError, match=r"^shard.tar: member s1.tokens.npy: sound code 512 out of range 0..511"
    ):
        encoder.encode_block([good, _sample(sound_string([1, 512]), "ok", [1, 512], 1)])
    with pytest.raises(ShardError, match=r"^shard.tar: member s2: json holds 2 sound tokens, tokens.npy 3"):
        encoder.encode_block([good, _sample(sound_string([1, 2]), "ok", [1, 2, 3], 2)])
    no_npy = _sample(sound_string([1, 512]), "ok", [], 3)
    no_npy.codes = None  # a shard without tokens.npy: the codes come from the text alone
    with pytest.raises(ShardError, match=r"^shard.tar: member s3.json: sound code 512 out of range 0..511"):
        encoder.encode_block([good, no_npy])
    for n, user in enumerate(
        [
            "<|sound_start|><|sound_0001|><|sound_00x2|><|sound_end|>",  # not a code
            f"{sound_string([1])} and {sound_string([2])}",  # two spans in one turn
            "<|sound_start|><|sound_0001|><|sound_02|><|sound_end|>",  # uneven
        ],
        start=4,
    ):
        broken = _sample(user, "ok", [1, 2], n)
        broken.codes = None
        with pytest.raises(
            ShardError, match=rf"^shard.tar: member s{n}.json: turn 0: the sound span is not a run"
        ):
            encoder.encode_block([good, broken])
    without_npy = _sample(sound_string([1, 2]), "ok", [], 7)
    without_npy.codes = None
    tokens, labels = encoder.encode(without_npy)
    with_npy = encoder.encode(_sample(sound_string([1, 2]), "ok", [1, 2], 8))
    assert tokens.tolist() == with_npy[0].tolist() and labels.tolist() == with_npy[1].tolist()
    tok = tiny_tokenizer()
    assert tok.sound_ids([1, 2]) == tokens[tokens.tolist().index(tok.sound_start_id) :][:4].tolist()
