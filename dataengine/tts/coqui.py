"""Coqui TTS backend (``coqui-tts``, ``TTS.api.TTS``): its model names, e.g. XTTS v2 with a speaker.

Recipe mapping (:func:`tts_kwargs`): ``model`` -> the Coqui model name (default XTTS v2; loaded through
Coqui's own model cache, ``$TTS_HOME/tts/<name with -->``, or for Hub-hosted ones such as XTTS v2 the
huggingface_hub cache, so both work offline once filled) or a local checkpoint (a folder with
``config.json`` and ``model.pth``, or a ``.pth`` file with ``config.json`` beside it), ``voice`` ->
``speaker`` (a built-in speaker name such as ``Ana Florence``) or ``speaker_wav`` (an existing audio file
to clone; ``default``: neither), ``language`` -> ``language`` (``en`` if unset and the model is
multilingual), ``length_scale`` -> XTTS's ``speed = 1 / length_scale`` (other models: only 1.0). Sampling
is seeded from the text.

The package is imported lazily: ``coqui-tts`` 0.28 installs beside CPU torch 2.13 but refuses to import
without torchaudio and (torch >= 2.9) torchcodec, which have no working build for it, so it is an optional
extra. Model weights download on first use (XTTS v2 also asks the user to accept the CPML licence). See the
README for what was run (a tiny VITS through the library's own synthesizer).
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.fingerprint import file_digest
from dataengine.recipe import VoiceConfig
from dataengine.tts.base import TTSBackend

DEFAULT_MODEL = "tts_models/multilingual/multi-dataset/xtts_v2"
_INSTALL_HINT = "pip install coqui-tts (it needs torch and torchaudio builds that match)"


def _import_tts() -> Any:
    try:
        from TTS.api import TTS
    except Exception as exc:  # noqa: BLE001 - ImportError, or its own "requires torchaudio" error
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise ImportError(
            f"the 'coqui' TTS backend cannot import TTS.api ({type(exc).__name__}: {first.strip()}): "
            f"{_INSTALL_HINT}"
        ) from None
    return TTS


def local_checkpoint(model: str | None) -> tuple[Path, Path] | None:
    """(checkpoint, config.json) when ``model`` is a local folder or ``.pth`` file, else None."""
    if not model or not (model.startswith((".", "/", "~")) or model.endswith((".pth", ".pth.tar"))):
        return None
    path = Path(model).expanduser()
    if path.is_dir():
        config = path / "config.json"
        checkpoints = [path / n for n in _CHECKPOINT_NAMES if (path / n).is_file()]
        checkpoints = checkpoints or sorted(path.glob("*.pth"))
        if not config.is_file() or len(checkpoints) != 1:
            raise ValueError(f"Coqui model folder {path}: needs config.json and one checkpoint (model.pth)")
        return checkpoints[0], config
    if path.is_file() and (path.parent / "config.json").is_file():
        return path, path.parent / "config.json"
    raise ValueError(f"Coqui model {model!r}: no such checkpoint with a config.json beside it")


_CHECKPOINT_NAMES = ("model.pth", "model_file.pth", "checkpoint.pth", "model_file.pth.tar")


def _local_model_kind(config: Path) -> str:
    import json

    try:
        return str(json.loads(config.read_text(encoding="utf-8")).get("model", ""))
    except (OSError, ValueError) as exc:
        raise ValueError(f"Coqui model config {config}: not readable JSON ({exc})") from None


def model_name(voice: VoiceConfig) -> str:
    """The Coqui model name, or for a local checkpoint its path; ValueError for anything else."""
    local = local_checkpoint(voice.model)
    if local is not None:
        return str(local[0])
    name = voice.model or DEFAULT_MODEL
    if name.count("/") != 3 or not name.startswith(("tts_models/", "voice_conversion_models/")):
        raise ValueError(
            f"Coqui model {name!r}: expected a model name like {DEFAULT_MODEL} or a local checkpoint "
            "(a folder with config.json and model.pth)"
        )
    return name


def tts_kwargs(voice: VoiceConfig) -> dict[str, Any]:
    """``TTS.tts(text, **kwargs)`` arguments for a voice; ValueError for settings the model cannot take."""
    name = model_name(voice)
    local = local_checkpoint(voice.model)
    if local is not None:  # the config says what the model is
        name = f"tts_models/{_local_model_kind(local[1])}"
    kwargs: dict[str, Any] = {}
    if voice.voice != "default":
        path = Path(voice.voice).expanduser()
        if path.is_file():
            kwargs["speaker_wav"] = str(path)
        else:
            kwargs["speaker"] = voice.voice
    language = voice.language or ("en" if "/multilingual/" in name else None)
    if language:
        kwargs["language"] = language
    if "xtts" in name:
        kwargs["speed"] = round(1.0 / voice.length_scale, 4)
    elif voice.length_scale != 1.0:
        raise ValueError(f"Coqui model {name!r}: length_scale other than 1 is only mapped for XTTS models")
    return kwargs


class CoquiBackend(TTSBackend):
    """One Coqui model and speaker; the model loads on first use and is not pickled."""

    takes_reference = True  # reference audio -> XTTS speaker_wav

    def __init__(self, voice: VoiceConfig, gpu: bool = False) -> None:
        if voice.backend != "coqui":
            raise ValueError(f"CoquiBackend got a voice for backend {voice.backend!r}")
        self.voice = voice
        self.gpu = gpu
        self.model = model_name(voice)
        self.local = local_checkpoint(voice.model)
        self.kwargs = tts_kwargs(voice)
        self._tts_cls = _import_tts()
        self._tts: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tts": None, "_tts_cls": None}

    @property
    def sample_rate(self) -> int:
        self.load()
        return int(self._tts.synthesizer.output_sample_rate)

    @property
    def version(self) -> str:
        args = ";".join(f"{k}={v}" for k, v in sorted(self.kwargs.items()))
        model = self.model
        if self.local is not None:  # by content: a retrained checkpoint at the same path is another voice
            model = "local:" + ",".join(file_digest(path) for path in self.local)
        speaker = self.kwargs.get("speaker_wav")
        if speaker:
            args += f";speaker_wav_sha256={file_digest(Path(speaker))}"
        return f"coqui-tts=={metadata.version('coqui-tts')};model={model};{args};seed=sha256(text)"

    def load(self) -> None:
        if self._tts is not None:
            return
        cls = self._tts_cls or _import_tts()
        try:
            if self.local is not None:
                checkpoint, config = self.local
                tts = cls(model_path=str(checkpoint), config_path=str(config), progress_bar=False)
            else:  # Coqui's model cache ($TTS_HOME/tts), or the HF cache for Hub-hosted models
                tts = cls(self.model, progress_bar=False)
            self._tts = tts.to("cuda" if self.gpu else "cpu")
        except (Exception, EOFError) as exc:  # noqa: BLE001 - download, licence prompt, missing files
            first = (str(exc).splitlines() or [""])[0]
            raise RuntimeError(
                f"Coqui model {self.model!r} could not load ({type(exc).__name__}: {first}); download it "
                f"once with network access (`tts --model_name {self.model} --list_speaker_idxs`; XTTS "
                "asks you to accept the CPML licence)"
            ) from None

    def synthesize(self, text: str) -> np.ndarray:
        if not text.strip():
            return np.zeros(0, dtype=np.float32)
        self.load()
        import torch

        torch.manual_seed(int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little"))
        wav = self._tts.tts(text, split_sentences=True, **self.kwargs)
        return np.ascontiguousarray(np.asarray(wav, dtype=np.float32).reshape(-1))
