"""Ichigo-compatible strings: sound tokens as text, the transcription requests, a turn's rendered content."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dataengine.sample import Turn

SOUND_START = "<|sound_start|>"
SOUND_END = "<|sound_end|>"

TRANSCRIPTION_REQUESTS = (
    "Transcribe the following audio clip:",
    "Convert the spoken words to text:",
    "What is being said in this audio clip:",
    "Transcribe the speech in this audio sample:",
    "Please write down what is being said in the audio clip:",
    "Generate a transcript from this sound file:",
    "Recognize the speech in this audio clip:",
    "Produce a text version of this audio recording:",
)
"""Ichigo's own requests (janhq's torchtune fork, ``torchtune/models/llama3/_tokenizer_custom.py``),
character for character: its tokenizer treats a sample as transcription only when the text before
``<|sound_start|>`` (stripped) equals one of them, and otherwise silently drops that text."""


_SOUND_TOKENS = [f"<|sound_{code:04d}|>" for code in range(10_000)]
"""Every code's token text, made once: the ordered part renders one per sound token of every sample."""


def sound_string(tokens: Iterable[int]) -> str:
    """``<|sound_start|><|sound_0042|>…<|sound_end|>`` as Ichigo / llama3-s models read it."""
    codes = tokens.tolist() if isinstance(tokens, np.ndarray) else [int(t) for t in tokens]
    table = _SOUND_TOKENS
    body = "".join([table[c] if 0 <= c < len(table) else f"<|sound_{c:04d}|>" for c in codes])
    return SOUND_START + body + SOUND_END


def parse_sound_string(text: str) -> np.ndarray:
    """The codes of a sound string (inverse of :func:`sound_string`)."""
    if not (text.startswith(SOUND_START) and text.endswith(SOUND_END)):
        raise ValueError("not a sound string")
    body = text[len(SOUND_START) : -len(SOUND_END)]
    codes = [int(p) for p in body.replace("<|sound_", " ").replace("|>", " ").split()]
    return np.asarray(codes, dtype=np.int16)


def render_content(turn: Turn) -> str:
    """A turn's ``content`` in Ichigo's layout: its text, or for a spoken turn ``[prefix\\n]<sound>``."""
    if not turn.spoken:
        return turn.text
    if turn.tokens is None:
        raise ValueError(f"spoken turn {turn.key or '?'} has no sound tokens")
    sound = sound_string(turn.tokens)
    return f"{turn.prefix}\n{sound}" if turn.prefix else sound
