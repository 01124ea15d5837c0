"""Shared, cached training test inputs: a tiny tiktoken BPE + special tokens + tiny llama3 checkpoint."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

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
