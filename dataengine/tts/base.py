"""The TTS backend interface and the registry that builds a backend from a recipe's VoiceConfig.

Backends import their (optional) packages lazily; a missing one raises a single ImportError that
says what to pip install. Register new backends in :data:`BACKENDS` (or with :func:`register_backend`).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from dataengine.recipe import VoiceConfig


class TTSBackend(ABC):
    """One loaded voice: text in, mono float32 audio at :attr:`sample_rate` out."""

    voice: VoiceConfig
    takes_reference: bool = False
    """Whether ``voice`` may be a reference recording to speak like (so a ``clone:N:FOLDER`` entry works)."""

    @property
    def name(self) -> str:
        """Voice name as recorded in a spoken turn's ``voice`` (e.g. ``piper:joe-us@1``)."""
        return self.voice.name

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Rate of the audio :meth:`synthesize` returns."""

    @property
    @abstractmethod
    def version(self) -> str:
        """Everything that decides the output (package version, model hash, settings): a cache-key part."""

    def check(self) -> None:  # noqa: B027 - optional hook
        """Cheap checks beyond the constructor's (which finds the voice's files and packages), run before
        a build starts; raise ValueError or ImportError with one line."""

    def load(self) -> None:  # noqa: B027 - optional hook
        """Load the model now; :meth:`synthesize` loads it on first use otherwise."""

    @abstractmethod
    def synthesize(self, text: str) -> np.ndarray:
        """Speak ``text``; returns mono float32 at :attr:`sample_rate` (empty if nothing was spoken)."""

    @classmethod
    def expand_voice(cls, voice: VoiceConfig, seed: int) -> list[VoiceConfig]:
        """The voices one pool entry stands for (a backend may turn one entry into many speakers, drawn
        from the recipe ``seed``); checks the entry, raising ValueError. Default: the entry itself."""
        return [voice]


BackendFactory = Callable[[VoiceConfig], TTSBackend]

BACKENDS: dict[str, str | BackendFactory] = {
    "piper": "dataengine.tts.piper:PiperBackend",
    "espeak": "dataengine.tts.espeak:EspeakBackend",
    "whisperspeech": "dataengine.tts.whisperspeech:WhisperSpeechBackend",
    "coqui": "dataengine.tts.coqui:CoquiBackend",
    "kokoro": "dataengine.tts.kokoro:KokoroBackend",
}
"""Backend name (``VoiceConfig.backend``) -> factory, or ``"module:attr"`` imported on first use."""


def register_backend(name: str, factory: str | BackendFactory) -> None:
    """Add or replace a backend factory."""
    BACKENDS[name] = factory


def backend_module(name: str) -> str:
    """The module that holds backend ``name``'s code (a cache-key part of the voices that use it)."""
    factory = BACKENDS[name]
    return factory.partition(":")[0] if isinstance(factory, str) else factory.__module__


def backend_factory(name: str) -> BackendFactory:
    """The factory (usually the backend class) registered as ``name``; ValueError if there is none."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown TTS backend {name!r} (known: {known})") from None
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
    return factory


def make_backend(voice: VoiceConfig) -> TTSBackend:
    """Build the backend a voice names; raises ValueError for an unknown backend name."""
    return backend_factory(voice.backend)(voice)
