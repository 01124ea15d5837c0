"""A small learned detector of low-bitrate speech codecs (trained on Opus at 9-12 kbps, libopus SILK
wideband, which keeps the whole band): a logistic regression over the shape of the clip's own LPC
residual (numpy only, about 2.5 ms per second of audio).

Why the residual: a low-bitrate analysis-by-synthesis codec rebuilds speech from an LPC filter driven by a
coarsely quantized excitation (a few pulses, the rest near zero), so inverse-filtering the decoded clip
leaves a residual with more small values and more far outliers than the near-Gaussian residual of a
recorded or vocoded voice. The histogram of the residual, normalised per 5 ms block, does not depend on
the level, the spectral tilt or the sample rate the clip went through, so it carries across talkers and
recording channels (a G.722-coded top band, a 44.1 kHz round trip, room tone) where band-energy features
did not. The weights live in ``dataengine/assets/`` and are refitted by
:mod:`dataengine.evaluation.codec_fit`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

DEFAULT_ASSET = "codec_detector.json"
SCORE_FLOOR = -50.0
"""``codec_score`` of a clip with no active frame (silence, or shorter than one analysis frame)."""

LPC_ORDER = 16
FRAME = 320  # 20 ms at 16 kHz
HOP = 160
BLOCK = 80  # 5 ms: the residual is normalised per block, as a codec's gains are per subframe
ACTIVE_WITHIN = 1e-3  # frames within 30 dB of the loudest
VOICED_CORR = 0.5  # normalised autocorrelation peak at 2.5-19 ms lags above which a frame is voiced
BINS = (0.0, 0.1, 0.3, 0.6, 1.0, 1.5, 2.5, np.inf)
"""Edges of the histogram of ``|residual| / block RMS``."""
_EDGES = np.asarray(BINS[1:-1])
FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{part}_{name}"
    for part in ("unvoiced", "voiced")
    for name in (*(f"bin{i}" for i in range(len(BINS) - 1)), "mean_abs", "fourth_moment")
)


def _levinson(r: np.ndarray, order: int) -> np.ndarray:
    """LPC polynomials ``(frames, order + 1)`` from autocorrelations ``(frames, order + 1)``."""
    a = np.zeros_like(r)
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, order + 1):
        k = -(a[:, :i] * r[:, i:0:-1]).sum(axis=1) / np.maximum(err, 1e-20)
        a[:, 1 : i + 1] = a[:, 1 : i + 1] + k[:, None] * a[:, i - 1 :: -1][:, :i]
        err = err * (1.0 - k * k)
    return a


def residual_features(audio: np.ndarray) -> np.ndarray | None:
    """The residual histogram of the active frames, unvoiced and voiced apart (:data:`FEATURE_NAMES`);
    None when no frame is active."""
    x = np.nan_to_num(np.asarray(audio, dtype=np.float64).reshape(-1))
    if len(x) < FRAME + LPC_ORDER:
        return None
    starts = np.arange(LPC_ORDER, len(x) - FRAME + 1, HOP)
    seg = np.lib.stride_tricks.sliding_window_view(x, FRAME + LPC_ORDER)[starts - LPC_ORDER]
    energy = np.square(seg[:, LPC_ORDER:]).mean(axis=1)
    peak = float(energy.max())
    if peak <= 1e-18:
        return None
    seg = seg[energy >= peak * ACTIVE_WITHIN]
    if len(seg) < 2:
        return None
    body = seg[:, LPC_ORDER:]
    windowed = body * np.hanning(FRAME)
    r = np.stack([(windowed[:, : FRAME - k] * windowed[:, k:]).sum(axis=1) for k in range(LPC_ORDER + 1)], 1)
    lags = np.arange(LPC_ORDER + 1)
    r = r * np.exp(-0.5 * (2 * np.pi * 60.0 * lags / 16_000.0) ** 2)  # 60 Hz lag window
    r[:, 0] = r[:, 0] * 1.0001 + 1e-12  # white-noise correction
    a = _levinson(r, LPC_ORDER)
    resid = sum(a[:, k : k + 1] * seg[:, LPC_ORDER - k : LPC_ORDER - k + FRAME] for k in range(LPC_ORDER + 1))
    centre = resid[:, FRAME // 4 : 3 * FRAME // 4].reshape(len(seg), -1, BLOCK)  # the 10 ms the LPC fits best
    z = np.abs(centre / np.sqrt(np.square(centre).mean(axis=2, keepdims=True) + 1e-20)).reshape(len(seg), -1)
    centred = body - body.mean(axis=1, keepdims=True)
    ac = np.fft.irfft(np.abs(np.fft.rfft(centred, n=2 * FRAME)) ** 2)[:, :FRAME]
    voicing = (ac[:, 40:300] / np.maximum(ac[:, :1], 1e-20)).max(axis=1)
    out: list[float] = []
    for part in (voicing < VOICED_CORR, voicing >= VOICED_CORR):
        v = z[part] if part.sum() >= 3 else z
        hist = np.bincount(np.searchsorted(_EDGES, v.ravel(), side="right"), minlength=len(BINS) - 1) / v.size
        out += [*hist.tolist(), float(v.mean()), float(np.mean(v**4))]
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class CodecDetector:
    """Standardise the features, then a linear score: the log-odds that the clip went through a codec."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def score_features(self, features: np.ndarray) -> np.ndarray:
        """Log-odds for a ``(clips, features)`` matrix."""
        return ((features - self.mean) / self.scale) @ self.weights + self.bias

    def score(self, audio: np.ndarray) -> float:
        """``codec_score`` of one 16 kHz clip (:data:`SCORE_FLOOR` when it has no active frame)."""
        feats = residual_features(audio)
        if feats is None:
            return SCORE_FLOOR
        return float(max(SCORE_FLOOR, self.score_features(feats[None])[0]))

    def to_json(self, extra: dict | None = None) -> str:
        doc = {
            "features": list(FEATURE_NAMES),
            "mean": [round(float(v), 8) for v in self.mean],
            "scale": [round(float(v), 8) for v in self.scale],
            "weights": [round(float(v), 8) for v in self.weights],
            "bias": round(float(self.bias), 8),
            **(extra or {}),
        }
        return json.dumps(doc, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CodecDetector:
        doc = json.loads(text)
        if tuple(doc.get("features", ())) != FEATURE_NAMES:
            raise ValueError("codec detector weights were fitted on other features; refit them")
        return cls(
            np.array(doc["mean"]), np.array(doc["scale"]), np.array(doc["weights"]), float(doc["bias"])
        )


def default_asset() -> Path:
    return Path(str(resources.files("dataengine") / "assets" / DEFAULT_ASSET))


@cache
def load_detector(path: Path | None = None) -> CodecDetector:
    """The shipped detector (or the one at ``path``)."""
    return CodecDetector.from_json((path or default_asset()).read_text(encoding="utf-8"))


def active_frames(audio: np.ndarray) -> int:
    """How many 20 ms frames (10 ms hop) are within 30 dB of the loudest: what the histogram is taken over."""
    x = np.nan_to_num(np.asarray(audio, dtype=np.float64).reshape(-1))
    if len(x) < FRAME + LPC_ORDER:
        return 0
    starts = np.arange(LPC_ORDER, len(x) - FRAME + 1, HOP)
    energy = np.square(np.lib.stride_tricks.sliding_window_view(x, FRAME)[starts]).mean(axis=1)
    peak = float(energy.max())
    return 0 if peak <= 1e-18 else int(np.count_nonzero(energy >= peak * ACTIVE_WITHIN))


def codec_score(audio: np.ndarray) -> float:
    """Log-odds that this 16 kHz clip went through a low-bitrate speech codec (shipped weights)."""
    return load_detector().score(audio)


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, l2: float = 1.0, iterations: int = 30
) -> CodecDetector:
    """L2-regularised logistic regression by Newton's method (deterministic: no random start)."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-9
    z = np.c_[(features - mean) / scale, np.ones(len(features))]
    y = labels.astype(np.float64)
    w = np.zeros(z.shape[1])
    penalty = l2 * np.diag(np.r_[np.ones(z.shape[1] - 1), 0.0])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -60, 60)))
        grad = z.T @ (p - y) + penalty @ w
        hess = (z * (p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    return CodecDetector(mean, scale, w[:-1], float(w[-1]))
