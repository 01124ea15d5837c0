"""The one record that flows through every pipeline stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

AUDIO_SAMPLE_RATE = 16_000
"""Every stage after TTS sees mono float32 audio at this rate."""


@dataclass
class Reject:
    """Why a sample was dropped: the stage, a short machine-readable reason, the measured value."""

    stage: str
    reason: str
    value: float | None = None
    detail: str = ""


@dataclass
class Sample:
    """An instruction/response pair on its way to becoming a spoken training sample.

    Stages fill fields in order: the source sets ``id``/``prompt``/``response``; TTS sets ``voice`` and
    ``audio``; filters add ``metrics``; the tokenizer sets ``tokens``; formatting sets ``task`` and
    ``text``. A stage that drops the sample sets ``reject`` and the sample still flows on, untouched,
    to the rejects manifest.
    """

    id: str
    index: int
    prompt: str
    response: str
    source: str = ""
    voice: str | None = None
    audio: np.ndarray | None = None
    tokens: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    task: str | None = None
    text: dict[str, Any] = field(default_factory=dict)
    reject: Reject | None = None

    @property
    def kept(self) -> bool:
        return self.reject is None

    @property
    def duration_s(self) -> float:
        return 0.0 if self.audio is None else len(self.audio) / AUDIO_SAMPLE_RATE

    def drop(self, stage: str, reason: str, value: float | None = None, detail: str = "") -> Sample:
        """Mark the sample rejected (first reason wins) and return it."""
        if self.reject is None:
            self.reject = Reject(stage=stage, reason=reason, value=value, detail=detail)
        return self
