"""Sound tokens are single ids after every existing id; codes and their string form give the same ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torchtune.data import Message
from torchtune.models.llama3._tokenizer import LLAMA3_SPECIAL_TOKENS, Llama3Tokenizer
from training_fixtures import tiny_tokenizer

from dataengine.formatting import sound_string
from training.dataset import tokenize_conversation
from training.shards import decode_sample, iter_raw_samples, resolve_shards
from training.tokenizer import SOUND_END, SOUND_START, with_sound_tokens


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


def test_every_built_sample_tokenizes_like_torchtune_on_its_string_form(small_build_dir: Path) -> None:
    tok = tiny_tokenizer()
    samples = [decode_sample(raw) for url in resolve_shards(small_build_dir) for raw in iter_raw_samples(url)]
    assert len(samples) == 14 and {s.task for s in samples} == {"instruction", "transcription"}
    for sample in samples:
        user, assistant = (m["content"] for m in sample.conversations)
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
