"""Shared training test inputs: a tiny tiktoken BPE + special tokens + tiny llama3 checkpoint (cached),
and hand-written shards holding every task's conversation layout."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import torch
from dataengine.training.shards import iter_raw_samples, resolve_shards
from dataengine.training.tiny import TINY_MODEL, init_tiny
from dataengine.training.tokenizer import SoundLlama3Tokenizer, load_special_tokens, sound_llama3_tokenizer
from torchtune.models.llama3 import llama3

from dataengine.formatting import TRANSCRIPTION_REQUESTS, sound_string
from dataengine.writers.members import tokens_npy
from dataengine.writers.shards import ShardWriter

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
BASE_ROWS = 320 + 257  # the tiny BPE + Llama 3's special tokens, before any sound token


@cache
def tiny_dir() -> Path:
    """Built once per test session in a temporary folder (tiktoken's cache goes there too)."""
    folder = Path(tempfile.mkdtemp(prefix="tiny-llama-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder / ".tiktoken-cache")
    init_tiny(folder, seed=0)
    return folder


@cache
def tiny_tokenizer() -> SoundLlama3Tokenizer:
    folder = tiny_dir()
    return sound_llama3_tokenizer(str(folder / "tokenizer.model"), str(folder / "special_tokens.json"))


def equal_shards(build_dir: Path, out: Path, n_shards: int = 4, per_shard: int = 4) -> list[str]:
    """The build's samples (repeated under new ids where needed) as ``n_shards`` shards of ``per_shard``
    samples each, so that every rank of an even split gets as many samples; returns the sample ids."""
    raws = [raw for url in resolve_shards(build_dir) for raw in iter_raw_samples(url)]
    writer = ShardWriter(out / "shards", "train", max_samples=per_shard, max_bytes=1 << 30)
    ids = []
    for n in range(n_shards * per_shard):
        raw = raws[n % len(raws)]
        meta = json.loads(raw["json"])
        meta["id"] = f"{meta['id']}-{n // len(raws)}"
        members = {ext: data for ext, data in raw.items() if not ext.startswith("__")}
        members["json"] = json.dumps(meta, sort_keys=True).encode()
        writer.add(meta["id"], members)
        ids.append(meta["id"])
    writer.close()
    return ids


def tiny_base_model(folder: Path) -> dict[str, torch.Tensor]:
    """A tiny llama3 without sound tokens, with the tiny tokenizer's special-token file beside it."""
    folder.mkdir(parents=True)
    torch.manual_seed(3)
    state = llama3(vocab_size=BASE_ROWS, **TINY_MODEL).state_dict()
    specials = load_special_tokens(tiny_dir() / "special_tokens.json")
    base = {s: i for s, i in specials.items() if "sound" not in s}
    (folder / "special_tokens.json").write_text(
        json.dumps({"added_tokens": [{"id": i, "content": s} for s, i in base.items()]})
    )
    return state


def spoken(codes: list[int], request: str = "") -> str:
    return f"{request}\n{sound_string(codes)}" if request else sound_string(codes)


def conversations(n: int) -> list[tuple[str, list[dict[str, str]], list[int]]]:
    """(task, turns, all sound codes in order) for ``n`` hand-written samples of every task."""
    rng = np.random.default_rng(n)
    out = []
    for k in range(n):
        a, b, c = (rng.integers(0, 512, size=int(rng.integers(3, 12))).tolist() for _ in range(3))
        kind = k % 5
        if kind == 0:
            turns = [("user", spoken(a)), ("assistant", "Two plus two is four."), ("user", spoken(b))]
            turns += [("assistant", "And four plus four is eight."), ("user", spoken(c))]
            turns += [("assistant", f"Sixteen, answer {k}.")]
            out.append(("multi_turn", turns, a + b + c))
        elif kind == 1:
            turns = [("user", f"What is the capital of France? ({k})"), ("assistant", "Paris.")]
            turns += [("user", "And of Italy?"), ("assistant", "Rome.")]
            out.append(("text_only", turns, []))
        elif kind == 2:
            turns = [("user", spoken(a)), ("assistant", "I couldn't make out any speech in that recording.")]
            out.append(("noise_refusal", turns, a))
        elif kind == 3:
            request = TRANSCRIPTION_REQUESTS[k % len(TRANSCRIPTION_REQUESTS)]
            out.append(("transcription", [("user", spoken(a, request)), ("assistant", "hello there")], a))
        else:
            turns = [("system", "You are a helpful assistant."), ("user", spoken(a))]
            turns += [("assistant", "Sure."), ("user", spoken(b)), ("assistant", "Done.")]
            out.append(("multi_turn", turns, a + b))
    return [(task, [{"role": r, "content": c} for r, c in turns], codes) for task, turns, codes in out]


def write_mixed_shards(folder: Path, n: int = 20, per_shard: int = 5, with_npy: bool = True) -> list[str]:
    """Shards as a build writes them (``ShardWriter``; ``json`` + ``tokens.npy``) holding every task."""
    writer = ShardWriter(folder / "shards", "train", max_samples=per_shard, max_bytes=1 << 30)
    ids = []
    for k, (task, turns, codes) in enumerate(conversations(n)):
        sample_id = f"mix-{k:04d}"
        record = {"id": sample_id, "index": k, "task": task, "conversations": turns}
        members = {"json": json.dumps(record, sort_keys=True).encode()}
        if with_npy:
            members["tokens.npy"] = tokens_npy(np.array(codes, dtype=np.int16))
        writer.add(sample_id, members)
        ids.append(sample_id)
    writer.close()
    return ids
