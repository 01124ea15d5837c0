"""WhisperVQ semantic tokens: a Whisper encoder plus a WhisperSpeech ``RQBottleneckTransformer`` quantizer.

Mirrors ``whisperspeech.vq_stoks.RQBottleneckTransformer.encode_audio`` (inference only): per-clip log-mel,
mel padded with -1.5 (or trimmed) to 3000 frames, Whisper encoder, downsample, ``x + mlp(mlp_ln(x))``, one
vector quantizer (cosine or Euclidean), tokens trimmed to the real audio when ``mask_embs``.
Checkpoints are whisperspeech ``save_model`` files: ``{"config", "tunables", "state_dict"}``.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dataengine.tokenizer.ct2_whisper import default_whisper_checkpoint
from dataengine.tokenizer.errors import TokenizerError
from dataengine.tokenizer.whisper_encoder import (
    N_FRAMES,
    SAMPLE_RATE,
    LayerNorm,
    WhisperEncoder,
    load_whisper_encoder,
    log_mel_spectrogram,
    pad_or_trim_mel,
)

DEFAULT_ASSET = "whispervq-tiny.en-512c.pt"
"""The embedded codebook, in ``dataengine/assets/``, fitted by :mod:`dataengine.tokenizer.fit`."""


class WhisperVQ(nn.Module):
    """Audio -> WhisperVQ token ids. Build it with :func:`load_whispervq`."""

    def __init__(
        self,
        encoder: WhisperEncoder,
        config: dict[str, Any],
        tunables: dict[str, Any],
        state_dict: dict[str, Tensor],
        source: str = "",
    ) -> None:
        super().__init__()
        width = int(config["n_head"]) * int(config["head_width"])
        if width != encoder.n_state:
            raise TokenizerError(
                f"{source}: VQ width {width} (n_head x head_width) does not match the Whisper encoder "
                f"width {encoder.n_state}"
            )
        if int(config.get("q_depth", 1)) != 1:
            raise TokenizerError(f"{source}: only q_depth=1 checkpoints are supported")
        if tunables.get("downsample_conv"):
            raise TokenizerError(f"{source}: downsample_conv checkpoints are not supported")
        self.encoder = encoder
        self.downsample = int(config.get("downsample", 1))
        self.downsample_mean = bool(tunables.get("downsample_mean", False))
        self.mask_embs = bool(tunables.get("mask_embs", False))
        self.use_cosine_sim = bool(config.get("use_cosine_sim", False))
        self._vq_codes = int(config["vq_codes"])
        self._source = source
        embed = _pick(state_dict, ["rq.layers.0._codebook.embed"], source).float()
        codebook = embed[0] if embed.ndim == 3 else embed
        codebook_dim = codebook.shape[-1]
        self.project_in: nn.Linear | None = None
        if codebook_dim != width:
            self.project_in = nn.Linear(width, codebook_dim)
            self.project_in.weight.data.copy_(_pick(state_dict, _PROJ_W, source))
            self.project_in.bias.data.copy_(_pick(state_dict, _PROJ_B, source))
        self.register_buffer("codebook", codebook.clone())
        # The bottleneck residual ``x + mlp(mlp_ln(x))``. Checkpoints without ``mlp.*`` keys (the embedded
        # default, an identity bottleneck) skip it rather than store megabytes of zeros.
        self.mlp: nn.Sequential | None = None
        self.mlp_ln: LayerNorm | None = None
        if "mlp.0.weight" in state_dict:
            ffn = width * int(config.get("ffn_mult", 4))
            self.mlp = nn.Sequential(nn.Linear(width, ffn), nn.GELU(), nn.Linear(ffn, width))
            self.mlp_ln = LayerNorm(width)
            self.mlp.load_state_dict(
                {k[4:]: v.float() for k, v in state_dict.items() if k.startswith("mlp.")}
            )
            self.mlp_ln.load_state_dict(
                {k[7:]: v.float() for k, v in state_dict.items() if k.startswith("mlp_ln.")}
            )
        self.float().eval()

    @property
    def vq_codes(self) -> int:
        """Codes real audio maps to (the mask code, if any, is extra)."""
        return self._vq_codes

    @property
    def tokens_per_second(self) -> float:
        return self.encoder.n_ctx / self.downsample / (N_FRAMES * 160 / SAMPLE_RATE)

    @property
    def source(self) -> str:
        return self._source

    def quantize(self, embs: Tensor) -> Tensor:
        """Encoder output (B, n_ctx, width) -> code ids (B, n_ctx // downsample)."""
        b, t, width = embs.shape
        d = self.downsample
        if self.downsample_mean:
            x = embs.reshape(b, t // d, d, width).mean(-2)
        else:
            x = embs[:, ::d]
        if self.mlp is not None and self.mlp_ln is not None:
            x = x + self.mlp(self.mlp_ln(x))
        if self.project_in is not None:
            x = self.project_in(x)
        if self.use_cosine_sim:
            sim = F.normalize(x, dim=-1) @ F.normalize(self.codebook, dim=-1).t()
            return sim.argmax(dim=-1)
        dist = torch.cdist(x, self.codebook.unsqueeze(0).expand(b, -1, -1))
        return dist.argmin(dim=-1)

    def forward(self, mels: Tensor, n_frames: list[int]) -> list[Tensor]:
        """Padded mels (B, n_mels, 3000) and the unpadded frame counts -> one token tensor per clip."""
        stoks = self.quantize(self.encoder(mels))
        if not self.mask_embs:
            return list(stoks)
        return [row[: n // 2 // self.downsample] for row, n in zip(stoks, n_frames, strict=True)]

    def encode(self, audios: list[np.ndarray], batch_size: int | None = None) -> list[np.ndarray]:
        """16 kHz mono float32 clips -> int64 token arrays; one encoder pass per ``batch_size`` clips."""
        batch_size = batch_size or max(1, len(audios))
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(audios), batch_size):
                mels = [
                    log_mel_spectrogram(a, self.encoder.n_mels) for a in audios[start : start + batch_size]
                ]
                padded = torch.stack([pad_or_trim_mel(m, 2 * self.encoder.n_ctx) for m in mels])
                for tokens in self(padded, [m.shape[-1] for m in mels]):
                    out.append(tokens.numpy().astype(np.int64))
        return out


_PROJ_W = ["rq.project_in.weight", "rq.layers.0.project_in.weight"]
_PROJ_B = ["rq.project_in.bias", "rq.layers.0.project_in.bias"]


def _pick(state_dict: dict[str, Tensor], keys: list[str], source: str) -> Tensor:
    for key in keys:
        if key in state_dict:
            return state_dict[key].float()
    raise TokenizerError(f"{source}: checkpoint has no {' or '.join(keys)}")


def _resolve_checkpoint(ref: str) -> Path:
    """``default``, a local path, or ``org/repo:file`` (Hub, cache-aware) -> a local file."""
    if ref == "default":
        path = Path(str(resources.files("dataengine") / "assets" / DEFAULT_ASSET))
        if not path.is_file():
            raise TokenizerError(
                f"default tokenizer checkpoint {path} is missing: build it with dataengine.tokenizer.fit"
            )
        return path
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    repo, sep, filename = ref.partition(":")
    if not sep or "/" not in repo or not filename:
        raise TokenizerError(f"tokenizer checkpoint {ref!r}: no such file (expected a path or org/repo:file)")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as exc:  # noqa: BLE001 - offline, missing repo/file, network: all one message
        raise TokenizerError(
            f"tokenizer checkpoint {ref!r} is not available ({type(exc).__name__}); "
            f"fetch it with `hf download {repo} {filename}` (or `huggingface-cli download {repo} {filename}`)"
        ) from None


def _resolve_whisper(name: str | None, ref: str) -> Path:
    if name in ("tiny.en", "default"):
        return default_whisper_checkpoint()
    if name and Path(name).expanduser().is_file():
        return Path(name).expanduser()
    raise TokenizerError(
        f"tokenizer checkpoint {ref!r} needs Whisper model {name!r}, which is neither 'tiny.en' nor an "
        "existing file: pass tokenizer.whisper (an openai-whisper checkpoint path)"
    )


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def load_whispervq(ref: str = "default", whisper: str | None = None) -> WhisperVQ:
    """Load a WhisperVQ tokenizer: ``ref`` is ``default``, a local path or ``org/repo:file``.

    ``whisper`` (an openai-whisper checkpoint path) overrides the checkpoint's ``whisper_model_name``.
    """
    path = _resolve_checkpoint(ref)
    try:
        spec = torch.load(path, map_location="cpu", weights_only=True)
        config, tunables, state = dict(spec["config"]), dict(spec.get("tunables") or {}), spec["state_dict"]
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user-facing error
        raise TokenizerError(f"{ref}: not a WhisperVQ checkpoint ({type(exc).__name__}: {exc})") from None
    whisper_path = _resolve_whisper(whisper or config.get("whisper_model_name"), ref)
    encoder = load_whisper_encoder(whisper_path)
    whisper_name = whisper or config.get("whisper_model_name")
    source = f"{ref} (sha256:{_file_digest(path)}, whisper {whisper_name})"
    return WhisperVQ(encoder, config, tunables, state, source=source)
