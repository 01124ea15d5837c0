"""Fit the embedded default WhisperVQ codebook: spherical k-means over Whisper tiny.en encoder frames.

The checkpoint it builds is in whisperspeech ``save_model`` format with an identity bottleneck (no
``mlp`` residual, no ``project_in``), so a token is the code with the highest cosine
similarity to the mean-pooled encoder frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dataengine.tokenizer.ct2_whisper import save_atomic
from dataengine.tokenizer.whisper_encoder import WhisperEncoder, log_mel_spectrogram, pad_or_trim_mel


def extract_features(
    encoder: WhisperEncoder, audios: list[np.ndarray], downsample: int = 2, batch_size: int = 8
) -> np.ndarray:
    """Mean-pooled encoder frames (N, width) float32 of real audio only (first ``n // 2 // downsample``)."""
    rows: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(audios), batch_size):
            mels = [log_mel_spectrogram(a, encoder.n_mels) for a in audios[start : start + batch_size]]
            embs = encoder(torch.stack([pad_or_trim_mel(m, 2 * encoder.n_ctx) for m in mels]))
            b, t, width = embs.shape
            pooled = embs.reshape(b, t // downsample, downsample, width).mean(-2)
            for row, mel in zip(pooled, mels, strict=True):
                rows.append(row[: mel.shape[-1] // 2 // downsample].numpy())
    width = encoder.n_state
    return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, width), np.float32)


def _l2norm(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _kmeans_pp(points: np.ndarray, n_codes: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on unit vectors (squared chord distance); duplicates once points run out."""
    n = len(points)
    chosen = [int(rng.integers(n))]
    d2 = np.maximum(2.0 - 2.0 * points @ points[chosen[0]], 0.0)
    for _ in range(1, n_codes):
        total = d2.sum()
        idx = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        chosen.append(idx)
        d2 = np.minimum(d2, np.maximum(2.0 - 2.0 * points @ points[idx], 0.0))
    return points[chosen].copy()


def kmeans(features: np.ndarray, n_codes: int = 512, seed: int = 0, iters: int = 30) -> np.ndarray:
    """Spherical k-means (float64, k-means++ init): returns (n_codes, dim) unit-norm float32 centroids.

    Deterministic for a given seed. With fewer distinct points than codes, the extra codes duplicate
    existing points (they are never chosen: argmax keeps the first of equal scores).
    """
    if len(features) == 0:
        raise ValueError("kmeans needs at least one feature vector")
    rng = np.random.default_rng(seed)
    points = _l2norm(np.asarray(features, dtype=np.float64))
    centroids = _kmeans_pp(points, n_codes, rng)
    for _ in range(iters):
        sim = points @ centroids.T
        assign = sim.argmax(axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, points)
        counts = np.bincount(assign, minlength=n_codes)
        empty = counts == 0
        updated = centroids.copy()
        updated[~empty] = _l2norm(sums[~empty])
        if empty.any():  # re-seed empty codes with the worst-served points, deterministically
            worst = np.argsort(sim[np.arange(len(points)), assign], kind="stable")
            updated[empty] = (
                points[worst[: int(empty.sum())]] if len(worst) >= empty.sum() else updated[empty]
            )
        if np.array_equal(updated, centroids):
            break
        centroids = updated
    return _l2norm(centroids).astype(np.float32)


def build_checkpoint(codebook: np.ndarray, whisper_model_name: str = "tiny.en") -> dict:
    """A whisperspeech ``save_model``-format dict around ``codebook`` (vq_codes x width, unit rows).

    The bottleneck is the identity: the ``mlp``/``mlp_ln`` keys are left out (the loader then skips the
    residual), which keeps the file small. The mask code (row ``vq_codes``) is the zero vector: with
    cosine similarity it scores 0 and, sitting last, loses every tie, so it is only picked if a frame
    scores below 0 against all fitted codes (never observed for real audio).
    """
    vq_codes, width = codebook.shape
    head_width = 64 if width % 64 == 0 else width
    n_head, ffn_mult = width // head_width, 4
    embed = torch.zeros(1, vq_codes + 1, width, dtype=torch.float32)
    embed[0, :vq_codes] = torch.from_numpy(np.ascontiguousarray(codebook, dtype=np.float32))
    state_dict = {
        "rq.layers.0._codebook.initted": torch.tensor([True]),
        "rq.layers.0._codebook.cluster_size": torch.ones(1, vq_codes + 1),
        "rq.layers.0._codebook.embed": embed,
    }
    config = dict(
        vq_codes=vq_codes,
        q_depth=1,
        depth=1,
        n_head=n_head,
        head_width=head_width,
        ffn_mult=ffn_mult,
        codebook_dim=width,
        threshold_ema_dead_code=0,
        use_cosine_sim=True,
        downsample=2,
        whisper_model_name=whisper_model_name,
    )
    tunables = dict(mask_embs=True, downsample_mean=True, downsample_conv=False)
    return dict(config=config, tunables=tunables, state_dict=state_dict)


def save_checkpoint(ckpt: dict, path: str | Path) -> None:
    """Write ``ckpt`` with ``torch.save`` atomically (temporary name, then rename)."""
    save_atomic(ckpt, Path(path))
