"""Samples as a task prepares them: a prompt/response pair whose prompt is a spoken TTS turn."""

from __future__ import annotations

import numpy as np

from dataengine.sample import TTS, Sample


def spoken_pair(
    sample_id: str, index: int, prompt: str, response: str = "r", audio: np.ndarray | None = None
) -> Sample:
    sample = Sample.pair(sample_id, index, prompt, response)
    user = sample.turns[0]
    user.origin, user.key, user.audio = TTS, sample_id, audio
    return sample
