"""Whisper's log-mel front end and audio encoder, numerically as in openai-whisper (CPU, float32).

State-dict keys of :class:`WhisperEncoder` are openai-whisper's ``encoder.*`` keys without the prefix.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dataengine.tokenizer.errors import TokenizerError

SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
N_FRAMES = 3000
"""Mel frames in Whisper's 30 s window."""


def _hz_to_mel(freqs: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    mels = freqs / f_sp
    log_part = min_log_hz / f_sp + np.log(np.maximum(freqs, min_log_hz) / min_log_hz) / logstep
    return np.where(freqs >= min_log_hz, log_part, mels)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


@lru_cache(maxsize=4)
def _mel_filters_np(n_mels: int, sr: int, n_fft: int) -> np.ndarray:
    fft_freqs = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(np.float64(0.0)), _hz_to_mel(np.float64(sr / 2)), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    # librosa stores the triangles in a float32 array, then scales them in place (float32 result)
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    return (weights * enorm[:, None]).astype(np.float32)


def mel_filters(n_mels: int = 80, sr: int = SAMPLE_RATE, n_fft: int = N_FFT) -> Tensor:
    """Slaney-normalised mel filterbank (as ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)``)."""
    return torch.from_numpy(_mel_filters_np(n_mels, sr, n_fft).copy())


@lru_cache(maxsize=4)
def _cached_filters(n_mels: int) -> Tensor:
    return mel_filters(n_mels)


def log_mel_spectrogram(
    audio: np.ndarray | Tensor, n_mels: int = 80, device: torch.device | str | None = None
) -> Tensor:
    """openai-whisper's ``log_mel_spectrogram`` of one 16 kHz clip: (n_mels, len // 160) float32.

    The dynamic-range floor (max - 8) is taken over this clip alone, so call it per clip. ``device``
    (default: the input's) is where the STFT runs.
    """
    x = torch.as_tensor(audio).to(device=device, dtype=torch.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got {tuple(x.shape)}")
    if x.shape[0] <= N_FFT // 2:
        raise ValueError(f"audio too short for a mel frame: {x.shape[0]} samples (needs > {N_FFT // 2})")
    window = torch.hann_window(N_FFT, device=x.device)
    stft = torch.stft(x, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    mel_spec = _cached_filters(n_mels).to(x.device) @ magnitudes
    log_spec = torch.clamp(mel_spec, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


PAD_VALUE = -1.5
"""What WhisperVQ pads a clip's log-mel with to the 30 s window (its ``encode_mel``)."""


def pad_or_trim_mel(mel: Tensor, n_frames: int = N_FRAMES, value: float = PAD_VALUE) -> Tensor:
    """Trim the last axis to ``n_frames`` or right-pad it with ``value`` (WhisperVQ's ``encode_mel``)."""
    n = mel.shape[-1]
    if n > n_frames:
        return mel[..., :n_frames]
    return F.pad(mel, (0, n_frames - n), value=value)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (as openai-whisper's)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type(x.dtype)


class MultiHeadAttention(nn.Module):
    """Non-causal self-attention with openai-whisper's parameter names (``key`` has no bias)."""

    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def project(self, h: Tensor, query_rows: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values of the (layer-normed) input, (B, T, n_state) each; with
        ``query_rows``, queries of the first rows only (copied together first: torch's linear layer
        takes another kernel for a strided batch, whose last bits differ)."""
        rows = h if query_rows is None else h[:, :query_rows].contiguous()
        return self.query(rows), self.key(h), self.value(h)

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        b = q.shape[0]
        q, k, v = (z.view(b, z.shape[1], self.n_head, -1).permute(0, 2, 1, 3) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        return self.out(a.permute(0, 2, 1, 3).flatten(start_dim=2))

    def forward(self, x: Tensor) -> Tensor:
        return self.attend(*self.project(x))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm encoder block: ``x + attn(attn_ln(x))`` then ``x + mlp(mlp_ln(x))``."""

    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = LayerNorm(n_state)
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))
        self.mlp_ln = LayerNorm(n_state)

    def forward(
        self, x: Tensor, qkv: tuple[Tensor, Tensor, Tensor] | None = None, rows: int | None = None
    ) -> Tensor:
        """``qkv``: the attention's projections of ``attn_ln(x)`` when the caller already has them;
        ``rows``: only the first ``rows`` output frames (their queries still attend to every frame)."""
        if qkv is None:
            qkv = self.attn.project(self.attn_ln(x), rows)
        elif rows is not None:
            qkv = (qkv[0][:, :rows].contiguous(), qkv[1], qkv[2])
        if rows is not None:
            x = x[:, :rows].contiguous()
        x = x + self.attn.attend(*qkv)
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    """openai-whisper's ``AudioEncoder``: (B, n_mels, 2 * n_ctx) log-mel -> (B, n_ctx, n_state).

    Given each clip's mel length (``n_frames``), layer 0 takes the LayerNorm and Q/K/V projections of
    the frames that see only padding from a template computed once (:class:`PaddingTemplate`, ~3 % of
    the encoder on short clips); given ``rows``, the last layer computes only the first frames
    (:class:`LastLayerRows`, ~20 %). The frames returned are bit-identical either way.
    """

    def __init__(self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int) -> None:
        super().__init__()
        self.n_mels, self.n_ctx, self.n_state = n_mels, n_ctx, n_state
        self.conv1 = nn.Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(n_ctx, n_state))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(n_state, n_head) for _ in range(n_layer))
        self.ln_post = LayerNorm(n_state)
        self.padding = PaddingTemplate(self)
        self.short_stem = ShortStem(self)
        self.last_rows = LastLayerRows(self)

    def stem(self, mel: Tensor) -> Tensor:
        """The convolutions and positional embedding: (B, n_mels, 2 * n_ctx) -> (B, n_ctx, n_state)."""
        if mel.shape[-1] != 2 * self.n_ctx:
            raise ValueError(f"encoder expects {2 * self.n_ctx} mel frames, got {mel.shape[-1]}")
        return self.stem_rows(mel, self.n_ctx)

    def stem_rows(self, mel: Tensor, rows: int) -> Tensor:
        """The stem's first ``rows`` frames from the mel frames given (all of the window, or its start:
        frame ``i`` reads mel frames ``2i-2 .. 2i+2``, so ``rows`` must stay under ``(frames - 2) / 2``
        unless the frames are the whole window)."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x))
        x = x.permute(0, 2, 1)[:, :rows]
        return x + self.positional_embedding[:rows]

    def forward(self, mel: Tensor, n_frames: Sequence[int] | None = None, rows: int | None = None) -> Tensor:
        """``n_frames``: each clip's mel frames before padding with :data:`PAD_VALUE` (optional);
        ``rows``: only the first ``rows`` output frames are wanted (at least that many come back)."""
        x = self.short_stem.stem(mel, n_frames) if n_frames is not None else None
        x = self.stem(mel) if x is None else x
        qkv = self.padding.layer0_qkv(x, n_frames) if n_frames is not None else None
        keep = self.last_rows.rows(x, rows) if rows is not None else None
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, qkv if i == 0 else None, keep if i == last else None)
        return self.ln_post(x)


class ExactShortcut:
    """Work the encoder can skip or reuse with bit-identical output, for the weights it was set up for:
    :meth:`value` is :meth:`compute`'s result (``None`` or ``False``: the shortcut does not hold), redone
    when a weight in :meth:`tensors` is replaced or edited in place. Only on the CPU in float32 without
    autocast or gradients, where the project's checks were made."""

    def __init__(self, encoder: WhisperEncoder) -> None:
        self.encoder = encoder
        self._key: tuple | None = None
        self._value: Any = None

    def tensors(self) -> list[Tensor]:
        raise NotImplementedError

    def compute(self, device: torch.device) -> Any:
        raise NotImplementedError

    def value(self, x: Tensor) -> Any:
        usable = x.device.type == "cpu" and x.dtype == torch.float32
        if not usable or torch.is_grad_enabled() or torch.is_autocast_enabled("cpu"):
            return None
        tensors = self.tensors()
        if any(t.is_inference() for t in tensors):  # no version counter: in-place edits go unseen
            return None
        key = tuple((t.device, t.dtype, t.data_ptr(), t._version) for t in tensors)
        if key != self._key:
            self._key, self._value = key, self.compute(x.device)
        return self._value


class PaddingTemplate(ExactShortcut):
    """Layer 0's inputs for the frames of the 30 s window that see only padding.

    A clip's mel is padded with :data:`PAD_VALUE` to 3000 frames; the convolutions (kernel 3, the second
    with stride 2) make encoder frame ``i`` from mel frames ``2i-2 .. 2i+2``, so from frame
    ``n // 2 + 2`` on it sees padding only and, before the first attention mixes frames, equals the
    same frame of an all-padding window. Those rows' LayerNorm and Q/K/V projections are taken from
    that window, computed once. Exact because it is checked, not assumed: the stem's rows must equal the
    template's bit for bit (the convolutions run on the whole window as always), and LayerNorm and the
    linear layers must give each row the same bits whatever the number of rows, which is tested here
    once per weights at :data:`ROW_COUNTS` (MKL's AVX2 GEMM does from 7 rows on, with 1 or 2 threads;
    under ``MKL_CBWR=COMPATIBLE`` it does not, and where the check fails the full computation runs).
    Used on the CPU in float32 without autocast or gradients only.
    """

    MIN_ROWS = 64
    """A clip's own rows are projected in one product of at least this many rows (padding rows added):
    MKL's GEMM takes another kernel for 1 or 2 rows, whose last bits differ."""
    ROW_COUNTS = (64, 65, 100, 257, 751, 1499)
    """Row counts at which the row-independence of LayerNorm and the projections is checked."""

    @classmethod
    def own_rows(cls, n_frames: int, n_ctx: int) -> int:
        """Encoder frames a clip of ``n_frames`` mel frames computes itself (the rest are the template's)."""
        return min(n_ctx, max(cls.MIN_ROWS, int(n_frames) // 2 + 2))

    def layer0_qkv(self, x: Tensor, n_frames: Sequence[int]) -> tuple[Tensor, Tensor, Tensor] | None:
        """Layer 0's Q/K/V for ``x`` (the stem's output), padding rows from the template; None where
        the template does not apply (the caller then computes them all)."""
        rows = self.value(x) if len(n_frames) == x.shape[0] else None
        if rows is None:
            return None
        stem, *template = rows
        starts = [self.own_rows(n, x.shape[1]) for n in n_frames]
        if any(not torch.equal(x[b, s:], stem[s:]) for b, s in enumerate(starts)):
            return None
        block = self.encoder.blocks[0]
        clips = []
        for b, s in enumerate(starts):
            own = block.attn.project(block.attn_ln(x[b : b + 1, :s]))
            pairs = zip(own, template, strict=True)
            clips.append([torch.cat([mine, pad[None, s:]], dim=1) for mine, pad in pairs])
        q, k, v = (torch.cat(parts, dim=0) for parts in zip(*clips, strict=True))
        return q, k, v

    def tensors(self) -> list[Tensor]:
        enc = self.encoder
        tensors = [*enc.conv1.parameters(), *enc.conv2.parameters(), enc.positional_embedding]
        return tensors + [*enc.blocks[0].attn_ln.parameters(), *enc.blocks[0].attn.parameters()]

    def compute(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        enc, block = self.encoder, self.encoder.blocks[0]
        window = torch.full((1, enc.n_mels, 2 * enc.n_ctx), PAD_VALUE, device=device)
        stem = enc.stem(window)
        normed = block.attn_ln(stem)
        q, k, v = block.attn.project(normed)
        for n in self.ROW_COUNTS:
            if n >= stem.shape[1]:
                continue
            part = block.attn_ln(stem[:, :n])
            projected = block.attn.project(part)
            if not torch.equal(part, normed[:, :n]) or not all(
                torch.equal(mine, full[:, :n]) for mine, full in zip(projected, (q, k, v), strict=True)
            ):
                return None
        return stem[0], q[0], k[0], v[0]


class ShortStem(ExactShortcut):
    """The stem of a clip from the start of its window: the convolutions over the first ``width`` mel
    frames instead of all 3000, the frames that see only padding taken from :class:`PaddingTemplate`.
    ~80 % of the stem (~4 % of the encoder) on a clip of a few seconds.

    A clip's own frames (``max(64, n // 2 + 2)`` of them, as the template counts) need mel frames up to
    ``2 * rows + 2``; the width is the smallest of :data:`WIDTHS` that covers them. Exact because it is
    checked, not assumed: the mel after the clip must be :data:`PAD_VALUE` (so the other frames are the
    template's), and once per weights a batch of padded clips, one per width, is run both ways, where
    every frame must match the full stem's bits; a width that fails is not used. oneDNN picks its
    convolution kernels and blocking by shape and by the machine's caches: on a Zen 4 (AVX2 pins)
    windows of 256 frames or fewer take another kernel, whose last bits differ (hence no width under
    320), and an earlier AVX2-only AMD machine gave the stride-2 ``conv2`` other bits at every length
    but 3000, where the check turns the shortcut off. On the CPU in float32 without autocast or
    gradients only.
    """

    WIDTHS = (320, 448, 640, 1024, 1536, 2048)
    """Mel frames the convolutions may run over; a clip that needs more gets the whole window."""

    def tensors(self) -> list[Tensor]:
        enc = self.encoder
        return [*enc.conv1.parameters(), *enc.conv2.parameters(), enc.positional_embedding]

    def stem(self, mel: Tensor, n_frames: Sequence[int]) -> Tensor | None:
        """The stem of the padded mels ``mel`` whose clips have ``n_frames`` mel frames each, or None
        where the shortcut does not apply (the caller then runs the whole stem)."""
        enc = self.encoder
        if len(n_frames) != mel.shape[0] or mel.shape[-1] != 2 * enc.n_ctx:
            return None
        widths = self.value(mel)
        template = enc.padding.value(mel)
        if not widths or template is None:
            return None
        rows = [PaddingTemplate.own_rows(n, enc.n_ctx) for n in n_frames]
        picked = [next((w for w in widths if w >= 2 * r + 4), None) for r in rows]
        if any(w is None for w in picked):
            return None
        for b, n in enumerate(n_frames):
            if not bool((mel[b, :, max(0, int(n)) :] == PAD_VALUE).all()):
                return None  # not WhisperVQ's padding after the clip
        return self._stem(mel, rows, picked, template[0])  # type: ignore[arg-type]

    def _stem(self, mel: Tensor, rows: list[int], widths: list[int], padding: Tensor) -> Tensor:
        enc = self.encoder
        clips = [
            torch.cat([enc.stem_rows(mel[b : b + 1, :, :w], r), padding[None, r:]], dim=1)
            for b, (r, w) in enumerate(zip(rows, widths, strict=True))
        ]
        return torch.cat(clips, dim=0)

    def compute(self, device: torch.device) -> tuple[int, ...]:
        """The widths at which a clip gets the bits of the whole stem of a batch (one padded clip of
        random mel per width, each as long as its width allows, in one batch as a build has them)."""
        enc = self.encoder
        template = enc.padding.value(torch.zeros(1, device=device))
        if template is None:
            return ()
        widths = [w for w in self.WIDTHS if w < 2 * enc.n_ctx]
        rows = [(w - 4) // 2 for w in widths]
        trial = torch.full((len(widths), enc.n_mels, 2 * enc.n_ctx), PAD_VALUE)
        generator = torch.Generator().manual_seed(0)
        for b, r in enumerate(rows):
            n = 2 * (r - 2)  # the longest clip whose own rows fit the width
            trial[b, :, :n] = torch.rand(enc.n_mels, n, generator=generator) * 2 - 1.0
        trial = trial.to(device)
        full = enc.stem(trial)
        return tuple(
            w
            for b, (w, r) in enumerate(zip(widths, rows, strict=True))
            if torch.equal(self._stem(trial[b : b + 1], [r], [w], template[0]), full[b : b + 1])
        )


class LastLayerRows(ExactShortcut):
    """The last layer for the first frames only, where nothing reads the others (tokens without a
    decoder: the frames past the clip's tokens are dropped anyway). Their queries, attention, output
    projection, MLP and final LayerNorm are skipped: ~20 % of the encoder on a clip of a few seconds.

    Each kept row is computed as in the full layer (its query attends to all keys and values) and gets
    the same bits, because every product involved gives a row the same bits whatever the number of rows
    beside it (MKL's AVX2 GEMM from 7 rows on; SDPA's query blocks then hold whole multiples of
    :data:`ROW_BLOCK` rows): checked once per weights at :data:`CHECK_ROWS` on random input (one regime
    of SDPA's query blocking each); where that fails the whole layer runs.
    """

    ROW_BLOCK = 64
    CHECK_ROWS = (64, 192, 832)
    """One row count per regime of SDPA's query blocking (blocks of 32, 64, 256 rows)."""

    def tensors(self) -> list[Tensor]:
        return [*self.encoder.blocks[-1].parameters(), *self.encoder.ln_post.parameters()]

    def rows(self, x: Tensor, wanted: int) -> int | None:
        """Rows the last layer computes for ``wanted`` (rounded up to :data:`ROW_BLOCK`), or None: all."""
        rows = -(-max(1, wanted) // self.ROW_BLOCK) * self.ROW_BLOCK
        if rows >= x.shape[1] or not self.value(x):
            return None
        return rows

    def compute(self, device: torch.device) -> bool:
        enc, block = self.encoder, self.encoder.blocks[-1]
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(2, enc.n_ctx, enc.n_state, generator=generator).to(device)  # a batch: strided rows
        full = enc.ln_post(block(x))
        checks = [n for n in self.CHECK_ROWS if n < enc.n_ctx]
        return all(torch.equal(enc.ln_post(block(x, rows=n)), full[:, :n]) for n in checks)


def load_whisper_encoder(path: str | Path) -> WhisperEncoder:
    """Load the encoder of an openai-whisper checkpoint (``{"dims", "model_state_dict"}``): eval, float32."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        dims = ckpt["dims"]
        state = ckpt["model_state_dict"]
    except pickle.UnpicklingError:  # torch's message (six lines) recommends the unsafe weights_only=False
        raise TokenizerError(
            f"{path}: not a Whisper checkpoint (not a PyTorch file of plain tensors; files holding other "
            "Python objects are refused)"
        ) from None
    except (OSError, RuntimeError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise TokenizerError(f"{path}: not a Whisper checkpoint ({type(exc).__name__}: {first})") from None
    encoder = WhisperEncoder(
        dims["n_mels"],
        dims["n_audio_ctx"],
        dims["n_audio_state"],
        dims["n_audio_head"],
        dims["n_audio_layer"],
    )
    prefix = "encoder."
    enc_state = {k[len(prefix) :]: v.float() for k, v in state.items() if k.startswith(prefix)}
    encoder.load_state_dict(enc_state, strict=True)
    return encoder.float().eval()
