"""WhisperSpeech TTS backend: ``whisperspeech2`` (the maintained, inference-only fork of WhisperSpeech).

Its own pipeline runs: ``whisperspeech2.pipeline.Pipeline`` loads the T2S and S2A models and the Vocos
vocoder (24 kHz); :meth:`WhisperSpeechBackend.synthesize` makes ``Pipeline.generate``'s three calls
(``t2s.generate`` -> ``s2a.generate`` -> ``vocoder.decode``) itself, only to switch the progress bars off
and to turn the library's "text cut off" warnings into an error (a clip that lost its end must not pass).

Recipe mapping (:func:`pipeline_kwargs`, :func:`generate_kwargs`): ``model`` -> ``t2s_ref``, ``s2a`` ->
``s2a_ref`` (a local checkpoint or ``org/repo:file``, read through the huggingface_hub cache; None: the
library's defaults), ``voice`` -> the speaker (``default`` or another of the library's built-in speaker
embeddings, a ``.npy``/``.pt`` speaker-embedding file, or reference audio embedded by speechbrain's ECAPA
model), ``language`` -> ``lang``, ``length_scale`` -> ``cps = 15 / length_scale``. ``optimize=False``: in
whisperspeech2 that is float32 with the KV caches, without CUDA graphs or compilation (whisperspeech 0.8.9
has no KV cache unless it also converts to float16, which is why the fork is the dependency: see the
README). Sampling is seeded from the text, so the same text gives the same audio on the same machine.

Vocos (the vocoder) imports torchaudio, which has no build for the CPU torch this project pins, so this
backend is optional; the tests run the library end to end on tiny random checkpoints.
"""

from __future__ import annotations

import hashlib
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.recipe import VoiceConfig
from dataengine.tts.base import TTSBackend

_INSTALL_HINT = (
    "pip install whisperspeech2==2.0.1 vocos==0.1.0 encodec==0.1.1 (vocos needs a torchaudio build that "
    "matches torch; reference-audio speakers also need speechbrain)"
)
SAMPLE_RATE = 24_000
DEFAULT_CPS = 15.0
EMBEDDING_SUFFIXES = (".npy", ".pt")


def _import_pipeline() -> Any:
    try:
        from whisperspeech2.pipeline import Pipeline
    except Exception as exc:  # noqa: BLE001 - ImportError, or torchaudio failing to load its libraries
        first = (str(exc).splitlines() or [""])[0]
        raise ImportError(
            f"the 'whisperspeech' TTS backend cannot import whisperspeech2.pipeline "
            f"({type(exc).__name__}: {first}): {_INSTALL_HINT}"
        ) from None
    return Pipeline


def pipeline_kwargs(voice: VoiceConfig, device: str | None = None) -> dict[str, Any]:
    """``Pipeline(...)`` arguments for a voice."""
    return {
        "t2s_ref": voice.model,
        "s2a_ref": voice.s2a,
        "optimize": False,
        "torch_compile": False,
        "use_cuda_graph": False,
        "device": device,
    }


BUILTIN_SPEAKERS = ("default", "classic", "voice_b")
"""whisperspeech2's built-in speaker embeddings (``pipeline.SPEAKERS``)."""


def speaker_spec(voice: VoiceConfig) -> tuple[str, Path | None]:
    """``("builtin", None)``, ``("embedding", path)`` or ``("audio", path)``; ValueError if no such file."""
    if voice.voice in BUILTIN_SPEAKERS:
        return "builtin", None
    path = Path(voice.voice).expanduser()
    if not path.is_file():
        raise ValueError(
            f"WhisperSpeech voice {voice.voice!r}: use a built-in speaker ({', '.join(BUILTIN_SPEAKERS)}), "
            f"a speaker-embedding file ({', '.join(EMBEDDING_SUFFIXES)}) or a reference audio file"
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

    takes_reference = True  # reference audio -> speaker embedding (speechbrain ECAPA)

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
        refs = ";".join(
            f"{part}={_ref_id(ref)}" for part, ref in (("t2s", self.voice.model), ("s2a", self.voice.s2a))
        )
        speaker = (
            self.voice.voice
            if self.speaker_path is None
            else f"{self.speaker_path.name}:{_digest(self.speaker_path)}"
        )
        return (
            f"whisperspeech2=={metadata.version('whisperspeech2')};vocos=={metadata.version('vocos')};{refs}"
            f";speaker={speaker};lang={self.kwargs['lang']};cps={self.kwargs['cps']:g};float32;seed=sha256(text)"
        )

    def load(self) -> None:
        if self._pipe is not None:
            return
        cls = self._pipeline_cls or _import_pipeline()
        try:
            pipe = cls(**pipeline_kwargs(self.voice, self.device))
        except Exception as exc:  # noqa: BLE001 - a missing file or download fails with many error types
            raise RuntimeError(self._missing_weights(f"{type(exc).__name__}: {exc}")) from None
        speaker = self.voice.voice
        if self.speaker_kind == "embedding":
            speaker = _load_embedding(self.speaker_path)  # type: ignore[arg-type]
        elif self.speaker_kind == "audio":
            speaker = pipe.extract_spk_emb(str(self.speaker_path))
        self._speaker = _speaker_tensor(speaker)
        self._pipe = pipe

    def _missing_weights(self, detail: str) -> str:
        first = (detail.splitlines() or [""])[0]
        return (
            f"WhisperSpeech voice {self.name!r} could not load ({first}); its weights come from the "
            "Hugging Face Hub on first use: run once with network access, or `hf download` the t2s/s2a "
            "references and charactr/vocos-encodec-24khz (Vocos also reads Encodec's 24 kHz weights "
            "through torch.hub)"
        )

    def synthesize(self, text: str) -> np.ndarray:
        """``Pipeline.generate``'s own steps, seeded from the text; a cut-off text or speech is an error."""
        if not text.strip():
            return np.zeros(0, dtype=np.float32)
        self.load()
        import torch

        torch.manual_seed(text_seed(text))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stoks = self._pipe.t2s.generate(text.replace("\n", " "), show_progress_bar=False, **self.kwargs)[
                0
            ]
            atoks = self._pipe.s2a.generate(stoks, self._speaker.unsqueeze(0), show_progress_bar=False)
            audio = self._pipe.vocoder.decode(atoks)
        cut = [str(w.message) for w in caught if _CUT_OFF in str(w.message) or _TEXT_CUT in str(w.message)]
        if cut:
            raise ValueError(f"WhisperSpeech: {cut[0]}")
        return np.ascontiguousarray(audio.detach().float().cpu().numpy().reshape(-1), dtype=np.float32)


_CUT_OFF = "the audio is cut off"
_TEXT_CUT = "so the rest is ignored"
"""whisperspeech2's T2S warnings when a text is longer than it reads or its speech longer than it makes."""


def _speaker_tensor(speaker: Any) -> Any:
    """A speaker embedding tensor: a built-in name looked up in ``whisperspeech2.pipeline.SPEAKERS``."""
    if isinstance(speaker, str):
        from whisperspeech2.pipeline import SPEAKERS

        return SPEAKERS[speaker]
    return speaker


def _ref_id(ref: str | None) -> str:
    """A checkpoint reference for the cache key: a local file with its digest, else the reference."""
    if ref is None:
        return "default"
    path = Path(ref).expanduser()
    return f"{path.name}:{_digest(path)}" if path.is_file() else ref


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
