"""Speaker embeddings with resemblyzer's pretrained GE2E encoder (it ships in the wheel: nothing downloads).

An embedding is resemblyzer's own ``embed_utterance`` of its own ``preprocess_wav`` (volume to -30 dBFS,
long silences cut with WebRTC VAD): 256 non-negative floats of unit length, so the cosine distance of two
turns is ``1 - a @ b``.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from importlib import util
from pathlib import Path

import numpy as np

from dataengine.sample import AUDIO_SAMPLE_RATE

EMBEDDING_SIZE = 256
INSTALL_HINT = (
    "the speaker stage needs resemblyzer: pip install librosa==0.11.0 webrtcvad-wheels==2.0.14.post1 && "
    "pip install --no-deps resemblyzer==0.1.4"
)
PACKAGES = ("resemblyzer", "librosa", "webrtcvad-wheels", "scipy", "torch", "numpy")
"""Distributions whose version decides an embedding (a cache-key part)."""
THREADS = 1
"""torch threads while embedding: a fixed count (the bytes must not depend on the worker's share), and one
is fastest for this small LSTM (measured on 2 busy cores: 0.1 s a clip with 1 thread, 3-6 s with 2)."""
MIN_SECONDS = 0.2
"""Shorter audio (after silences are cut) is embedded as it came: VAD trimming needs some speech."""


def weights_file() -> Path:
    """The encoder's weights inside the resemblyzer wheel (ImportError naming the install when absent)."""
    spec = util.find_spec("resemblyzer")
    if spec is None or spec.origin is None:
        raise ImportError(INSTALL_HINT)
    path = Path(spec.origin).parent / "pretrained.pt"
    if not path.is_file():
        raise ImportError(f"resemblyzer is installed without its weights ({path}): {INSTALL_HINT}")
    return path


def digest(embedding: np.ndarray) -> str:
    """sha256 prefix of the float32 bytes: equal digests, equal embeddings."""
    return hashlib.sha256(np.ascontiguousarray(embedding, dtype=np.float32).tobytes()).hexdigest()[:16]


@functools.cache
def _voice_encoder():  # noqa: ANN202 - resemblyzer's VoiceEncoder, imported lazily
    """One loaded encoder per process (every stage instance of a worker shares it; it is read-only)."""
    weights_file()
    try:
        with warnings.catch_warnings():  # resemblyzer imports binary_dilation from a deprecated scipy path
            warnings.simplefilter("ignore", DeprecationWarning)
            from resemblyzer import VoiceEncoder
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from None
    return VoiceEncoder("cpu", verbose=False)


class SpeakerEncoder:
    """resemblyzer's VoiceEncoder on CPU, loaded on first use, not pickled."""

    def __init__(self) -> None:
        self._encoder = None

    def __getstate__(self) -> dict[str, object]:
        return {"_encoder": None}

    def load(self) -> None:
        if self._encoder is None:
            self._encoder = _voice_encoder()

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Unit-length float32 embedding of 16 kHz mono audio (ValueError when there is no audio)."""
        if audio is None or len(audio) == 0:
            raise ValueError("turn has no audio to embed")
        self.load()
        from resemblyzer import preprocess_wav

        wav = np.ascontiguousarray(audio, dtype=np.float32)
        trimmed = preprocess_wav(wav, source_sr=None)  # already at resemblyzer's 16 kHz
        if len(trimmed) >= MIN_SECONDS * AUDIO_SAMPLE_RATE:
            wav = trimmed.astype(np.float32)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        try:
            embedding = np.asarray(self._encoder.embed_utterance(wav), dtype=np.float32)
        finally:
            torch.set_num_threads(threads)
        norm = float(np.linalg.norm(embedding))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError("the speaker encoder gave no embedding (silent audio?)")
        return embedding / np.float32(norm)
