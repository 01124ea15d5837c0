"""WhisperSpeech TTS backend: ``whisperspeech.pipeline.Pipeline`` (T2S + S2A + Vocos vocoder, 24 kHz).

Recipe mapping (:func:`pipeline_kwargs`, :func:`generate_kwargs`): ``model`` -> ``t2s_ref``, ``s2a`` ->
``s2a_ref`` (``org/repo:file``; None: the library's defaults), ``voice`` -> ``speaker`` (``default``: the
library's built-in speaker embedding; a ``.npy``/``.pt`` file: a speaker embedding; any other file: reference
audio, embedded by speechbrain's ECAPA model), ``language`` -> ``lang``, ``length_scale`` -> ``cps =
15 / length_scale`` (15 characters/s is the library's default). Sampling is seeded from the text, so the
same text gives the same audio on the same machine.

Weights load from the Hugging Face Hub on first use; the package needs a working torchaudio, vocos and
speechbrain. Neither could be installed or downloaded where this adapter was written: see the README.
The library's ``Pipeline.generate`` speaks one text at a time, and so does this adapter.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.recipe import VoiceConfig
from dataengine.tts.base import TTSBackend

_INSTALL_HINT = "pip install whisperspeech==0.8.9 (it needs torchaudio, vocos and speechbrain)"
SAMPLE_RATE = 24_000
DEFAULT_CPS = 15.0
EMBEDDING_SUFFIXES = (".npy", ".pt")


def _import_pipeline() -> Any:
    try:
        from whisperspeech.pipeline import Pipeline
    except Exception as exc:  # noqa: BLE001 - ImportError, or torchaudio failing to load its libraries
        first = (str(exc).splitlines() or [""])[0]
        raise ImportError(
            f"the 'whisperspeech' TTS backend cannot import whisperspeech.pipeline "
            f"({type(exc).__name__}: {first}): {_INSTALL_HINT}"
        ) from None
    return Pipeline


def pipeline_kwargs(voice: VoiceConfig, device: str | None = None) -> dict[str, Any]:
    """``Pipeline(...)`` arguments for a voice."""
    return {"t2s_ref": voice.model, "s2a_ref": voice.s2a, "optimize": False, "device": device}


def speaker_spec(voice: VoiceConfig) -> tuple[str, Path | None]:
    """``("default", None)``, ``("embedding", path)`` or ``("audio", path)``; ValueError if no such file."""
    if voice.voice == "default":
        return "default", None
    path = Path(voice.voice).expanduser()
    if not path.is_file():
        raise ValueError(
            f"WhisperSpeech voice {voice.voice!r}: use 'default', a speaker-embedding file "
            f"({', '.join(EMBEDDING_SUFFIXES)}) or a reference audio file"
        )
    return ("embedding" if path.suffix in EMBEDDING_SUFFIXES else "audio"), path


def generate_kwargs(voice: VoiceConfig) -> dict[str, Any]:
    """``Pipeline.generate(text, **kwargs)`` arguments except the speaker (resolved when loading)."""
    return {"lang": voice.language or "en", "cps": round(DEFAULT_CPS / voice.length_scale, 3)}


def _load_embedding(path: Path) -> Any:
    import torch

    if path.suffix == ".npy":
        emb = torch.from_numpy(np.load(path)).float()
    else:
        emb = torch.load(path, map_location="cpu", weights_only=True).float()
    if emb.ndim != 1:
        raise ValueError(f"{path}: a speaker embedding must be one vector, got shape {tuple(emb.shape)}")
    return emb


def text_seed(text: str) -> int:
    """The sampling seed for one text."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little")


class WhisperSpeechBackend(TTSBackend):
    """A WhisperSpeech T2S/S2A pair and one speaker; the pipeline loads on first use and is not pickled."""

    def __init__(self, voice: VoiceConfig, device: str | None = None) -> None:
        if voice.backend != "whisperspeech":
            raise ValueError(f"WhisperSpeechBackend got a voice for backend {voice.backend!r}")
        self.voice = voice
        self.device = device
        self.speaker_kind, self.speaker_path = speaker_spec(voice)
        self.kwargs = generate_kwargs(voice)
        self._pipeline_cls = _import_pipeline()
        self._pipe: Any = None
        self._speaker: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pipe": None, "_speaker": None, "_pipeline_cls": None}

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def version(self) -> str:
        return (
            f"whisperspeech=={metadata.version('whisperspeech')};t2s={self.voice.model or 'default'}"
            f";s2a={self.voice.s2a or 'default'};speaker={self.voice.voice};lang={self.kwargs['lang']}"
            f";cps={self.kwargs['cps']:g};seed=sha256(text)"
        )

    def load(self) -> None:
        if self._pipe is not None:
            return
        cls = self._pipeline_cls or _import_pipeline()
        try:
            pipe = cls(**pipeline_kwargs(self.voice, self.device))
        except Exception as exc:  # noqa: BLE001 - the vocoder download fails with many error types
            raise RuntimeError(self._missing_weights(f"{type(exc).__name__}: {exc}")) from None
        # Pipeline prints and swallows T2S/S2A load failures; a missing model would fail much later
        for part in ("t2s", "s2a"):
            if not hasattr(pipe, part):
                raise RuntimeError(self._missing_weights(f"its {part.upper()} model did not load"))
        if self.speaker_kind == "embedding":
            self._speaker = _load_embedding(self.speaker_path)  # type: ignore[arg-type]
        elif self.speaker_kind == "audio":
            self._speaker = pipe.extract_spk_emb(str(self.speaker_path))
        self._pipe = pipe

    def _missing_weights(self, detail: str) -> str:
        first = (detail.splitlines() or [""])[0]
        return (
            f"WhisperSpeech voice {self.name!r} could not load ({first}); its weights come from the "
            "Hugging Face Hub on first use: run once with network access, or `hf download` the t2s/s2a "
            "references and charactr/vocos-encodec-24khz"
        )

    def synthesize(self, text: str) -> np.ndarray:
        if not text.strip():
            return np.zeros(0, dtype=np.float32)
        self.load()
        import torch

        torch.manual_seed(text_seed(text))
        audio = self._pipe.generate(text, speaker=self._speaker, **self.kwargs)
        return np.ascontiguousarray(audio.detach().float().cpu().numpy().reshape(-1), dtype=np.float32)
