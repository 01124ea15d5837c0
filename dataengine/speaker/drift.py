"""The voice-drift bound: a TTS turn whose speaker embedding is far from its voice's earlier kept turns.

A voice is expected to sound like itself from sentence to sentence; a turn that does not (a blend whose
style collapsed on some input, a backend that switched speaker mid-build) is ``speaker/voice_drift``. The
reference is the running mean of the voice's kept turns in the ordered writer's order, so the verdict is
the same for any number of workers and batch size; memory is one 256-float sum per voice.
"""

from __future__ import annotations

import numpy as np

from dataengine.recipe import SpeakerConfig
from dataengine.sample import TTS, Sample


class VoiceDrift:
    def __init__(self, config: SpeakerConfig) -> None:
        self.config = config
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, int] = {}

    def distance(self, voice: str, embedding: np.ndarray) -> float | None:
        """Cosine distance to the mean of ``voice``'s kept turns so far; None before ``drift_min_turns``."""
        if self.counts.get(voice, 0) < self.config.drift_min_turns:
            return None
        total = self.sums[voice]
        return float(1.0 - embedding.astype(np.float64) @ (total / np.linalg.norm(total)))

    def measure(self, sample: Sample) -> dict[int, float | None]:
        """Turn index -> drift of each TTS turn with an embedding (None: too few turns of its voice yet)."""
        return {
            i: self.distance(turn.voice, turn.speaker_embedding)
            for i, turn in enumerate(sample.turns)
            if turn.origin == TTS and turn.voice and turn.speaker_embedding is not None
        }

    def failing(self, drifts: dict[int, float | None]) -> tuple[int, float] | None:
        """The first turn over the bound, as (turn index, distance)."""
        bound = self.config.max_drift
        if bound is None:
            return None
        return next(((i, d) for i, d in drifts.items() if d is not None and d > bound), None)

    def record(self, sample: Sample) -> None:
        """Add a written sample's TTS turns to their voices' means."""
        for turn in sample.turns:
            if turn.origin == TTS and turn.voice and turn.speaker_embedding is not None:
                if turn.voice not in self.sums:
                    self.sums[turn.voice] = np.zeros(len(turn.speaker_embedding), dtype=np.float64)
                self.sums[turn.voice] += turn.speaker_embedding
                self.counts[turn.voice] = self.counts.get(turn.voice, 0) + 1
