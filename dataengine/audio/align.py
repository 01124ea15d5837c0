"""Give the segments of a long recording their words of its whole-recording transcript.

faster-whisper (the ASR model that ships with the project) transcribes the whole recording with word
timestamps; the transcript's own words are aligned to the words it heard (difflib on normalised words),
words it did not hear take a time interpolated between their aligned neighbours, and each word goes to
the segment its time falls in (the nearest one when it falls in a cut pause). The words are the
corpus's, never the ASR's: the ASR only says *when* they were spoken.
"""

from __future__ import annotations

from difflib import SequenceMatcher

import numpy as np

from dataengine.audio.asr import WhisperASR, normalize_text


def word_times(asr: WhisperASR, audio: np.ndarray) -> list[tuple[str, float]]:
    """``(word, mid time in s)`` of every word the model hears (greedy, deterministic)."""
    asr.load()
    segments, _ = asr._model.transcribe(  # noqa: SLF001 - the loaded faster-whisper model
        np.ascontiguousarray(audio, dtype=np.float32),
        language="en",
        beam_size=1,
        temperature=0.0,
        condition_on_previous_text=False,
        vad_filter=False,
        word_timestamps=True,
    )
    return [(w.word, (w.start + w.end) / 2) for s in segments for w in (s.words or [])]


def assign_words(
    text: str, heard: list[tuple[str, float]], spans_s: list[tuple[float, float]]
) -> list[str] | None:
    """The transcript's words split over ``spans_s`` (seconds, in order); None when no word aligns."""
    words = text.split()
    ref = [normalize_text(w) for w in words]
    hyp = [normalize_text(w) for w, _ in heard]
    times: list[float | None] = [None] * len(words)
    matcher = SequenceMatcher(None, ref, hyp, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            times[block.a + k] = heard[block.b + k][1]
    known = [i for i, t in enumerate(times) if t is not None and ref[i]]
    if not known:
        return None
    index = np.arange(len(words))
    filled = np.interp(index, known, [times[i] for i in known])  # ends take the nearest aligned time
    starts = np.array([a for a, _ in spans_s])
    ends = np.array([b for _, b in spans_s])
    out: list[list[str]] = [[] for _ in spans_s]
    for word, t in zip(words, filled, strict=True):
        inside = np.flatnonzero((starts <= t) & (t <= ends))
        if len(inside):
            k = int(inside[0])
        else:
            k = int(np.argmin(np.minimum(np.abs(starts - t), np.abs(ends - t))))
        out[k].append(word)
    return [" ".join(chunk) for chunk in out]
