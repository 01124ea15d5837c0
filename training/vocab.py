"""Grow a Llama 3 checkpoint's vocabulary by the sound tokens (HF safetensors or torchtune format).

New embedding rows are the mean of the existing rows, and new output rows likewise (the usual
initialisation for added tokens: the model starts out treating them as an average token). With the
``append`` layout sound ids go after every existing row and special id
(:func:`dataengine.training.tokenizer.with_sound_tokens`); with ``ichigo`` they take the ids of Ichigo's
released checkpoints (:func:`dataengine.training.tokenizer.ichigo_special_tokens`), so a Llama 3.1
checkpoint grows to Ichigo's 128,771 rows and an Ichigo checkpoint, already that size, is copied
unchanged. The complete special-token map is written to ``OUT/special_tokens.json`` for the tokenizer.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from dataengine.training.tokenizer import (
    DEFAULT_SOUND_CODES,
    ICHIGO_SOUND_CODES,
    layout_special_tokens,
    load_special_tokens,
    write_special_tokens,
)
from torchtune.models.llama3._tokenizer import LLAMA3_SPECIAL_TOKENS

EMBEDDING_KEYS = ("tok_embeddings.weight", "model.embed_tokens.weight")
OUTPUT_KEYS = ("output.weight", "lm_head.weight")
TORCH_SUFFIXES = (".pt", ".bin", ".pth")
SPECIAL_TOKENS_FILE = "special_tokens.json"


class VocabError(ValueError):
    """The input is not a checkpoint this can resize."""


@dataclass
class ResizeReport:
    format: str
    old_rows: int
    new_rows: int
    sound_start_id: int
    files: list[str]
    layout: str = "append"


def grow_rows(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """``weight`` with rows appended up to ``rows``, each the mean of the existing rows."""
    if rows < weight.shape[0]:
        raise VocabError(f"cannot shrink {weight.shape[0]} rows to {rows}")
    mean = weight.float().mean(dim=0, keepdim=True).to(weight.dtype)
    return torch.cat([weight, mean.expand(rows - weight.shape[0], -1)], dim=0).contiguous()


def _grow_state(state: dict[str, torch.Tensor], rows: int) -> int:
    keys = [k for k in (*EMBEDDING_KEYS, *OUTPUT_KEYS) if k in state]
    for key in keys:
        state[key] = grow_rows(state[key], rows)
    return len(keys)


def _base_special_tokens(src_dir: Path, special_tokens_path: Path | None) -> dict[str, int]:
    # Not HF's tokenizer.json: it lacks torchtune's <|image|> (128256), which Llama3Tokenizer requires.
    for path in (special_tokens_path, src_dir / SPECIAL_TOKENS_FILE):
        if path is not None and path.is_file():
            return load_special_tokens(path)
    return dict(LLAMA3_SPECIAL_TOKENS)


def _first_special_id(specials: dict[str, int]) -> int:
    """The BPE vocabulary size of a Llama 3 style map: its lowest non-sound special id (128000)."""
    ids = [i for token, i in specials.items() if not token.startswith("<|sound_")]
    if not ids:
        raise VocabError("the special-token map holds no Llama 3 special tokens")
    return min(ids)


def _embedding_rows(files: list[Path], fmt: str) -> int:
    for file in files:
        state = _load(file, fmt)
        for key in EMBEDDING_KEYS:
            if key in state:
                return int(state[key].shape[0])
    raise VocabError(f"no embedding ({' or '.join(EMBEDDING_KEYS)}) in {', '.join(f.name for f in files)}")


def _load(file: Path, fmt: str) -> dict[str, torch.Tensor]:
    if fmt == "hf":
        from safetensors.torch import load_file

        return load_file(str(file))
    return torch.load(file, map_location="cpu", weights_only=True)


def resize_vocab(
    src: Path,
    dst: Path,
    n_sound_codes: int | None = None,
    special_tokens_path: Path | None = None,
    layout: str = "append",
) -> ResizeReport:
    """Write ``src`` (a folder, or a single torchtune ``.pt``/``.bin`` file) with sound tokens to ``dst``.

    ``n_sound_codes`` defaults to 512 (dataengine's codebook) for ``append`` and 513 for ``ichigo``."""
    if n_sound_codes is None:
        n_sound_codes = ICHIGO_SOUND_CODES if layout == "ichigo" else DEFAULT_SOUND_CODES
    src_dir = src if src.is_dir() else src.parent
    if not src.exists():
        raise VocabError(f"{src}: no such file or folder")
    safetensors = sorted(src_dir.glob("*.safetensors")) if src.is_dir() else []
    fmt = "hf" if safetensors else "torchtune"
    files = safetensors or (
        [src] if src.is_file() else sorted(p for p in src_dir.iterdir() if p.suffix in TORCH_SUFFIXES)
    )
    if not files:
        raise VocabError(f"{src}: no *.safetensors, *.pt or *.bin checkpoint files")
    if dst.exists() and any(dst.iterdir()):
        raise VocabError(f"{dst}: output folder exists and is not empty")
    old_rows = _embedding_rows(files, fmt)
    base = _base_special_tokens(src_dir, special_tokens_path)
    # append: after every row the checkpoint has; ichigo: counted from the BPE size (the first special id)
    base_size = _first_special_id(base) if layout == "ichigo" else old_rows
    specials = layout_special_tokens(base, base_size, n_sound_codes, layout)
    new_rows = max(max(specials.values()) + 1, old_rows)  # a larger Ichigo vocabulary (v0.5) is kept
    dst.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        for other in sorted(p for p in src_dir.iterdir() if p.is_file() and p not in files):
            shutil.copy2(other, dst / other.name)
    added_bytes = 0
    for file in files:
        state = _load(file, fmt)
        before = sum(t.numel() * t.element_size() for t in state.values())
        if _grow_state(state, new_rows):
            added_bytes += sum(t.numel() * t.element_size() for t in state.values()) - before
        if fmt == "hf":
            from safetensors.torch import save_file

            save_file(state, str(dst / file.name), metadata={"format": "pt"})
        else:
            torch.save(state, dst / file.name)
    if fmt == "hf":
        _update_hf_json(dst, new_rows, added_bytes)
    write_special_tokens(specials, dst / SPECIAL_TOKENS_FILE)
    return ResizeReport(fmt, old_rows, new_rows, specials["<|sound_start|>"], [f.name for f in files], layout)


def _update_hf_json(dst: Path, rows: int, added_bytes: int) -> None:
    config = dst / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        data["vocab_size"] = rows
        config.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    index = dst / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text(encoding="utf-8"))
        if "total_size" in data.get("metadata", {}):
            data["metadata"]["total_size"] += added_bytes
        index.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
