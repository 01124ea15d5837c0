"""Where to cut a recording: edge silence trimmed, long recordings split at the VAD's pauses.

Works on Silero's 32 ms frames (:class:`~dataengine.audio.vad.SileroVAD`). A long recording is cut in
the middle of a pause (non-speech of at least ``min_pause_s``) into segments of ``min_s``-``max_s``
seconds; among the pauses that allow such a segment the longest wins (ties: the later one), so cuts
fall between sentences rather than between words. Only a stretch with no pause at all within
``max_s`` is cut at its least speech-like frame (counted in :attr:`Cuts.forced`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dataengine.audio.vad import SPEECH_THRESHOLD, SileroVAD
from dataengine.recipe import SegmentConfig
from dataengine.sample import AUDIO_SAMPLE_RATE


@dataclass
class Cuts:
    """Sample ranges ``[start, end)`` to keep, in order; ``forced``: cuts made inside speech."""

    spans: list[tuple[int, int]] = field(default_factory=list)
    forced: int = 0


def _pauses(speech: np.ndarray, first: int, last: int, min_frames: int) -> list[tuple[int, int]]:
    """Runs ``[a, b)`` of non-speech frames inside ``[first, last]`` at least ``min_frames`` long."""
    inner = ~speech[first : last + 1]
    edges = np.diff(np.concatenate([[0], inner.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(first + a, first + b) for a, b in zip(starts, ends, strict=True) if b - a >= min_frames]


def plan_cuts(
    probs: np.ndarray, n_samples: int, window: int, config: SegmentConfig, trim: bool, split: bool
) -> Cuts:
    """The spans of one recording from its per-frame speech probabilities (see the module docstring).

    A recording without any speech frame is kept whole (the filters reject it with their reason)."""
    speech = probs >= SPEECH_THRESHOLD
    idx = np.flatnonzero(speech)
    if not len(idx) or not (trim or split):
        return Cuts([(0, n_samples)])
    frame_s = window / AUDIO_SAMPLE_RATE
    pad = int(round(config.edge_pad_s * AUDIO_SAMPLE_RATE))

    def span(a: int, b: int) -> tuple[int, int]:  # speech frames a..b -> padded sample range
        return max(0, a * window - pad), min(n_samples, (b + 1) * window + pad)

    first, last = int(idx[0]), int(idx[-1])
    whole = span(first, last) if trim else (0, n_samples)
    if not split or (whole[1] - whole[0]) / AUDIO_SAMPLE_RATE <= config.max_s:
        return Cuts([whole])
    min_f, max_f = int(config.min_s / frame_s), int(config.max_s / frame_s)
    pauses = _pauses(speech, first, last, max(1, int(round(config.min_pause_s / frame_s))))
    cuts = Cuts()
    start = first
    while (last + 1 - start) > max_f:
        fits = [(b - a, a, b) for a, b in pauses if a > start and min_f <= a - start and a - start <= max_f]
        if fits:
            _, a, b = max(fits)
            end, nxt = a - 1, b
        else:  # no pause: cut at the least speech-like frame of the window
            low = start + min_f + int(np.argmin(probs[start + min_f : start + max_f]))
            end, nxt = low, low + 1
            cuts.forced += 1
        cuts.spans.append(span(start, end))
        following = idx[idx >= nxt]
        start = int(following[0]) if len(following) else last
    cuts.spans.append(span(start, last))
    if len(cuts.spans) > 1:  # a short tail joins the previous segment when that fits
        (a0, _), (_, b1) = cuts.spans[-2], cuts.spans[-1]
        tail_s = (cuts.spans[-1][1] - cuts.spans[-1][0]) / AUDIO_SAMPLE_RATE
        if tail_s < config.min_s and (b1 - a0) / AUDIO_SAMPLE_RATE <= config.max_s + 2 * config.edge_pad_s:
            cuts.spans[-2:] = [(a0, b1)]
    if not trim:
        cuts.spans[0] = (0, cuts.spans[0][1])
        cuts.spans[-1] = (cuts.spans[-1][0], n_samples)
    return cuts


def cut_recording(audio: np.ndarray, vad: SileroVAD, config: SegmentConfig, trim: bool, split: bool) -> Cuts:
    """:func:`plan_cuts` for 16 kHz mono ``audio``."""
    if not (trim or split):
        return Cuts([(0, len(audio))])
    return plan_cuts(vad.frame_probs(audio), len(audio), vad.window_size, config, trim, split)
