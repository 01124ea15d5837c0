"""Shared, cached training test inputs: a tiny tiktoken BPE + special tokens + tiny llama3 checkpoint."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

from dataengine.writers.shards import ShardWriter
from training.shards import iter_raw_samples, resolve_shards
from training.tiny import init_tiny
from training.tokenizer import SoundLlama3Tokenizer, sound_llama3_tokenizer


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
