"""The one record that flows through every pipeline stage: a conversation of turns.

A sample is an ordered list of turns. A *spoken* turn (a user turn with an ``origin``) also carries its
audio, sound tokens and metrics; instruction and transcription samples are the two-turn case, a
multi-turn conversation has several spoken user turns, a text-only sample has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

AUDIO_SAMPLE_RATE = 16_000
"""Every stage after TTS sees mono float32 audio at this rate."""

USER = "user"
ASSISTANT = "assistant"

TTS = "tts"
NOISE = "noise"
RECORDING = "recording"
TOKENS = "tokens"
T2S = "t2s"
ORIGINS: tuple[str, ...] = (TTS, NOISE, RECORDING, TOKENS, T2S)
"""Where a spoken turn's sound comes from: spoken by a TTS voice, a noise clip (synthetic or a packaged
recording), a real recording (its transcript, if any, in ``text``), sound tokens drawn directly
(no audio; stages that need audio skip it), or sound tokens a text-to-semantic model made from the
turn's text (no audio either: :mod:`dataengine.t2s`)."""


@dataclass
class Reject:
    """Why a sample was dropped: the stage, a short machine-readable reason, the measured value, and
    for a reason found in one turn, that turn's index in the conversation."""

    stage: str
    reason: str
    value: float | None = None
    detail: str = ""
    turn: int | None = None


@dataclass(frozen=True)
class RecordingRef:
    """Where a recording turn's audio is still to be read, and how: the ``decode`` stage
    (:mod:`dataengine.audio.decode_stage`) reads it in a worker and sets the turn's ``audio``.

    The source's limits travel with the turn, so two recordings sources in one recipe keep theirs."""

    where: str
    """The path relative to the corpus (or the row), for reject details."""
    path: str | None = None
    data: bytes | None = None
    """The encoded file itself (a 🤗 dataset's Audio bytes), when there is no path."""
    start_s: float = 0.0
    duration_s: float | None = None
    """A slice of the file (a lhotse cut); None: to its end."""
    max_file_s: float = 3600.0
    max_channels: int = 2
    trim: bool = True
    """Cut leading/trailing non-speech down to ``edge_pad_s`` (the VAD's frames)."""
    edge_pad_s: float = 0.2


@dataclass
class Turn:
    """One turn. ``text`` is what the turn says in words (for a spoken turn: the words spoken, or the
    transcript of a recording; empty for noise). A spoken turn has an ``origin``; its content is
    rendered as ``prefix`` (e.g. a transcription request) followed by its sound tokens."""

    role: str
    text: str
    origin: str | None = None
    key: str = ""
    """Stable name of a spoken turn (seeded draws such as the voice, and the stage cache, use it)."""
    prefix: str = ""
    voice: str | None = None
    """What made the sound: the TTS voice (``piper:joe-us@1``) or the noise kind (``noise:pink``)."""
    audio: np.ndarray | None = None
    tokens: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    transcript: str | None = None
    """What the ASR round trip heard (when it ran)."""
    speaker_embedding: np.ndarray | None = None
    """The speaker encoder's unit-length embedding of the audio (when the speaker stage ran)."""
    recording: RecordingRef | None = None
    """A recording turn's audio still to be decoded (None once ``audio`` is set)."""
    augment: bool = False
    """Drawn for real-world conditions (``augment`` section); the augment stage then fills ``clean_audio``."""
    clean_audio: np.ndarray | None = None
    """The audio before augmentation (only on augmented turns)."""
    clean_tokens: np.ndarray | None = None
    """The sound tokens of ``clean_audio`` (the token-stability measurement)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Text values a stage declares as manifest columns (:attr:`~dataengine.stage.Stage.columns`)."""

    @property
    def spoken(self) -> bool:
        return self.origin is not None

    @property
    def duration_s(self) -> float:
        return 0.0 if self.audio is None else len(self.audio) / AUDIO_SAMPLE_RATE


@dataclass
class Sample:
    """A conversation on its way to becoming a training sample.

    The source sets ``id``, ``index``, ``source`` and the turns' text; the task marks which turns are
    spoken (their ``origin`` and ``key``); stages fill the spoken turns' audio, tokens and metrics; the
    ordered writer sets ``task`` (when several tasks share a stream) and the turns' rendering. A stage
    that drops the sample sets ``reject`` and the sample still flows on, untouched, to the rejects
    manifest.
    """

    id: str
    index: int
    source: str = ""
    turns: list[Turn] = field(default_factory=list)
    task: str | None = None
    reject: Reject | None = None
    flac: bytes | None = None
    """The ``flac`` member its shard will hold, encoded in a worker by the last step
    (:class:`~dataengine.writers.encode.EncodeMembers`): every spoken turn's audio in order for a kept
    sample, the failing turn's for a reject; None when there is none, or it is not kept."""

    @classmethod
    def pair(cls, id: str, index: int, prompt: str, response: str, source: str = "") -> Sample:  # noqa: A002
        """A prompt/response pair (nothing spoken yet)."""
        return cls(id=id, index=index, source=source, turns=[Turn(USER, prompt), Turn(ASSISTANT, response)])

    @property
    def kept(self) -> bool:
        return self.reject is None

    @property
    def prompt(self) -> str:
        """The first user turn's text (the prompt of a single-turn sample)."""
        return next((t.text for t in self.turns if t.role == USER), "")

    @property
    def response(self) -> str:
        """The last assistant turn's text."""
        return next((t.text for t in reversed(self.turns) if t.role == ASSISTANT), "")

    def spoken_turns(self) -> list[Turn]:
        return [t for t in self.turns if t.spoken]

    @property
    def duration_s(self) -> float:
        """Seconds of audio over every spoken turn."""
        return sum(t.duration_s for t in self.turns)

    def drop(
        self, stage: str, reason: str, value: float | None = None, detail: str = "", turn: int | None = None
    ) -> Sample:
        """Mark the sample rejected (first reason wins) and return it."""
        if self.reject is None:
            self.reject = Reject(stage=stage, reason=reason, value=value, detail=detail, turn=turn)
        return self


@dataclass(slots=True)
class Unit:
    """One spoken turn of a sample: what a stage works on. Dropping it rejects the whole sample and
    records the turn's index."""

    sample: Sample
    index: int

    @property
    def turn(self) -> Turn:
        return self.sample.turns[self.index]

    @property
    def kept(self) -> bool:
        return self.sample.reject is None

    def drop(self, stage: str, reason: str, value: float | None = None, detail: str = "") -> None:
        self.sample.drop(stage, reason, value, detail, turn=self.index)
