"""A tiny tiktoken rank file, special-token map and random llama3 checkpoint for CPU runs and tests.

The real Llama 3 ``tokenizer.model`` cannot be downloaded here, so CPU runs use a byte-level BPE
trained on a little text with tiktoken's own trainer; the special tokens keep Llama 3's names and
order but are renumbered right after the tiny vocabulary, so the model stays small.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from dataengine.training.tokenizer import sound_llama3_tokenizer, write_special_tokens
from tiktoken._educational import bpe_train
from tiktoken.load import dump_tiktoken_bpe
from torchtune.models.llama3 import llama3
from torchtune.models.llama3._tokenizer import CL100K_PATTERN, LLAMA3_SPECIAL_TOKENS

TINY_MODEL = {"num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "embed_dim": 64, "max_seq_len": 256}
LLAMA3_FIRST_SPECIAL = 128000


def corpus_text(max_chars: int = 20000) -> str:
    """English text that ships in a package (chatterbot-corpus, BSD-3) to train the tiny BPE on."""
    import chatterbot_corpus

    folder = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.yml")))
    return text[:max_chars]


def tiny_special_tokens(base_vocab_size: int) -> dict[str, int]:
    """Llama 3's special tokens (all of them, same order) shifted to start at ``base_vocab_size``."""
    return {s: i - LLAMA3_FIRST_SPECIAL + base_vocab_size for s, i in LLAMA3_SPECIAL_TOKENS.items()}


def write_tiny_tokenizer(text: str, folder: Path, vocab_size: int = 320) -> tuple[Path, Path]:
    """Train a byte-level BPE on ``text``; write ``tokenizer.model`` and ``special_tokens.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    ranks = bpe_train(text, vocab_size, CL100K_PATTERN, visualise=None)
    model_path, specials_path = folder / "tokenizer.model", folder / "special_tokens.json"
    dump_tiktoken_bpe(ranks, str(model_path))
    write_special_tokens(tiny_special_tokens(len(ranks)), specials_path)
    return model_path, specials_path


def write_tiny_model(folder: Path, vocab_size: int, seed: int = 0) -> Path:
    """A randomly initialised tiny llama3 in torchtune's checkpoint format (``model.pt``)."""
    torch.manual_seed(seed)
    model = llama3(vocab_size=vocab_size, **TINY_MODEL)
    path = folder / "model.pt"
    torch.save(model.state_dict(), path)
    return path


def init_tiny(folder: Path, text: str | None = None, seed: int = 0) -> dict[str, Path | int]:
    """Tokenizer files plus a matching random checkpoint, all under ``folder``."""
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(folder / ".tiktoken-cache"))
    model_path, specials_path = write_tiny_tokenizer(text if text is not None else corpus_text(), folder)
    tokenizer = sound_llama3_tokenizer(str(model_path), special_tokens_path=str(specials_path))
    checkpoint = write_tiny_model(folder, tokenizer.vocab_size, seed)
    return {
        "tokenizer": model_path,
        "special_tokens": specials_path,
        "checkpoint": checkpoint,
        "vocab_size": tokenizer.vocab_size,
    }
