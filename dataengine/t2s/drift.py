"""Figures that say whether T2S tokens look like speech tokens: on their own, and against the audio path.

On their own (every T2S turn): tokens per character of the text, the share of tokens that repeat their
predecessor, and the longest run of one code. Against the audio path (a TTS voice + the same tokenizer on
the same text): the length ratio, the edit distance after collapsing repeats (WhisperVQ repeats a code
while a sound lasts, so runs say more about speed than content), and the total-variation distance of the
two code histograms. All are plain numpy, deterministic, and cost little next to either model.
"""

from __future__ import annotations

import numpy as np


def collapse_repeats(tokens: np.ndarray) -> np.ndarray:
    """The sequence with each run of one code kept once (``1 1 2 2 2 1`` -> ``1 2 1``)."""
    tokens = np.asarray(tokens)
    if tokens.size == 0:
        return tokens
    keep = np.ones(tokens.size, dtype=bool)
    keep[1:] = tokens[1:] != tokens[:-1]
    return tokens[keep]


def repeat_share(tokens: np.ndarray) -> float:
    """Share of tokens equal to their predecessor (0 for fewer than two tokens)."""
    tokens = np.asarray(tokens)
    if tokens.size < 2:
        return 0.0
    return float(np.mean(tokens[1:] == tokens[:-1]))


def run_share(tokens: np.ndarray) -> float:
    """The longest run of one code as a share of the sequence (0 when empty)."""
    tokens = np.asarray(tokens)
    if tokens.size == 0:
        return 0.0
    edges = np.flatnonzero(np.diff(tokens) != 0)
    bounds = np.concatenate(([-1], edges, [tokens.size - 1]))
    return float(np.max(np.diff(bounds)) / tokens.size)


def edit_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Levenshtein distance of two id sequences (one numpy row per element of ``a``)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0 or b.size == 0:
        return int(max(a.size, b.size))
    previous = np.arange(b.size + 1)
    for i, code in enumerate(a, start=1):
        substitute = previous[:-1] + (b != code)
        current = np.empty_like(previous)
        current[0] = i
        # deletions and substitutions are elementwise; insertions chain left to right
        current[1:] = np.minimum(previous[1:] + 1, substitute)
        current = np.minimum.accumulate(current - np.arange(b.size + 1)) + np.arange(b.size + 1)
        previous = current
    return int(previous[-1])


def normalised_edit_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Edit distance of the collapsed sequences over the longer one's length (0: equal, 1: unrelated)."""
    ca, cb = collapse_repeats(a), collapse_repeats(b)
    longest = max(ca.size, cb.size)
    return 0.0 if longest == 0 else edit_distance(ca, cb) / longest


def histogram_distance(a: np.ndarray, b: np.ndarray, codes: int) -> float:
    """Total-variation distance of the two code histograms (0: same mix of codes, 1: disjoint codes)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0 or b.size == 0:
        return 0.0 if a.size == b.size else 1.0
    ha = np.bincount(a, minlength=codes)[:codes] / a.size
    hb = np.bincount(b, minlength=codes)[:codes] / b.size
    return float(0.5 * np.abs(ha - hb).sum())


def compare(t2s: np.ndarray, audio: np.ndarray, codes: int) -> dict[str, float]:
    """The guard's figures for one turn (metric names as in the manifest)."""
    return {
        "t2s_guard_tokens": float(len(audio)),
        "t2s_guard_length_ratio": len(t2s) / max(1, len(audio)),
        "t2s_guard_edit_distance": normalised_edit_distance(t2s, audio),
        "t2s_guard_histogram_distance": histogram_distance(t2s, audio, codes),
    }
