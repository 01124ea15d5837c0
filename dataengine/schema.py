"""What a shard sample and a manifest row hold: the one definition the writers, the card and readers use.

A kept sample is three tar members: ``json`` (:class:`SampleRecord`), ``tokens.npy`` (int16, the sound
codes of every spoken turn, concatenated in conversation order; :attr:`SpokenTurnRecord.n_sound_tokens`
splits them) and, optionally, ``flac`` (16 kHz mono, the spoken turns' audio concatenated). The codes
appear twice on purpose: ``conversations`` holds them as ``<|sound_XXXX|>`` text, which is what Ichigo's
own loaders read; ``tokens.npy`` is what this project's loader reads without parsing text. The writer
builds both from the same array.

The manifest holds one :class:`SampleRow` per kept sample and one :class:`RejectRow` per rejected item,
each followed by one float column per metric the registered stages write.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

import msgspec

from dataengine.formatting import render_content
from dataengine.sample import Sample, Turn

METRIC_DECIMALS = 4


class Message(msgspec.Struct):
    """One turn as Ichigo's loaders read it (OpenAI-style roles)."""

    role: str
    content: str


class SpokenTurnRecord(msgspec.Struct, omit_defaults=True):
    """What made one spoken turn, and what was measured on it."""

    turn: int
    """Index of the turn in ``conversations``."""
    origin: str
    voice: str | None
    text: str
    """The words spoken (empty for noise)."""
    duration_s: float
    n_sound_tokens: int
    metrics: dict[str, float | None]
    labels: dict[str, str] = {}
    """Text values stages declared as columns (the augment conditions); left out when there are none."""


class SampleRecord(msgspec.Struct):
    """The ``json`` member of a kept sample."""

    id: str
    index: int
    source: str
    task: str
    conversations: list[Message]
    speech: list[SpokenTurnRecord]
    """One entry per spoken turn, in conversation order (the order of the codes in ``tokens.npy``)."""
    duration_s: float
    n_sound_tokens: int


class RejectRecord(msgspec.Struct):
    """The ``json`` member of a rejected sample kept in ``rejected/*.tar`` (beside the ``flac`` of the
    turn that failed): why it was dropped and what was measured on that turn until then."""

    id: str
    index: int
    source: str
    task: str | None
    stage: str
    reason: str
    value: float | None
    detail: str
    turn: int | None
    prompt: str
    """The failing turn's text (the first user turn's when the reason is about the whole item)."""
    response: str
    voice: str | None
    duration_s: float
    metrics: dict[str, float | None]


class SampleRow(msgspec.Struct):
    """One kept sample in ``manifest/samples.parquet`` (its metric columns follow ``sha256``: those of
    the first spoken turn, the prompt of every single-turn task; every turn's are in the json member)."""

    id: str
    index: int
    source: str
    shard: str
    key: str
    task: str
    prompt: str
    response: str
    voice: str | None
    origin: str | None
    n_turns: int
    n_spoken_turns: int
    duration_s: float
    n_sound_tokens: int
    max_turn_sound_tokens: int
    sha256: str


class RejectRow(msgspec.Struct):
    """One rejected item in ``manifest/rejects.parquet``; ``turn`` is the index of the turn that failed
    (null for a reason about the whole item), and the text, voice, duration and metrics are that turn's."""

    id: str
    index: int
    source: str
    task: str | None
    stage: str
    reason: str
    value: float | None
    detail: str
    turn: int | None
    prompt: str
    voice: str | None
    origin: str | None
    duration_s: float | None


_JSON = msgspec.json.Encoder(order="sorted")
_RECORD = msgspec.json.Decoder(SampleRecord)


def metric_value(value: float) -> float | None:
    """A metric as stored: rounded to :data:`METRIC_DECIMALS`; NaN (not JSON) as null."""
    value = float(value)
    return None if math.isnan(value) else round(value, METRIC_DECIMALS)


def _turn_record(index: int, turn: Turn) -> SpokenTurnRecord:
    return SpokenTurnRecord(
        turn=index,
        origin=turn.origin or "",
        voice=turn.voice,
        text=turn.text,
        duration_s=round(turn.duration_s, METRIC_DECIMALS),
        n_sound_tokens=0 if turn.tokens is None else len(turn.tokens),
        metrics={k: metric_value(v) for k, v in sorted(turn.metrics.items())},
        labels=dict(sorted(turn.labels.items())),
    )


def sample_record(sample: Sample) -> SampleRecord:
    """The json member of a formatted, kept sample."""
    speech = [_turn_record(i, t) for i, t in enumerate(sample.turns) if t.spoken]
    return SampleRecord(
        id=sample.id,
        index=sample.index,
        source=sample.source,
        task=sample.task or "",
        conversations=[Message(t.role, render_content(t)) for t in sample.turns],
        speech=speech,
        duration_s=round(sample.duration_s, METRIC_DECIMALS),
        n_sound_tokens=sum(s.n_sound_tokens for s in speech),
    )


def encode_record(record: SampleRecord | RejectRecord) -> bytes:
    """Compact UTF-8 JSON with sorted keys (the bytes depend only on the record)."""
    return _JSON.encode(record)


def decode_record(payload: bytes) -> SampleRecord:
    return _RECORD.decode(payload)


def _metrics(turn: Turn | None, names: list[str]) -> dict[str, float | None]:
    metrics = turn.metrics if turn is not None else {}
    return {name: metric_value(metrics[name]) if name in metrics else None for name in names}


COLUMN_KINDS = ("string", "int16[]")
"""Kinds of the non-metric columns stages declare: a ``turn.labels`` text, or a token-array turn field."""


def column_value(turn: Turn | None, name: str, kind: str) -> Any:
    """One declared column's value for ``turn`` (None where the turn has none)."""
    if turn is None:
        return None
    if kind == "string":
        return turn.labels.get(name)
    if kind == "int16[]":
        value = getattr(turn, name)
        return None if value is None else [int(v) for v in value]
    raise ValueError(f"unknown column kind {kind!r} (kinds: {', '.join(COLUMN_KINDS)})")


def _columns(turn: Turn | None, columns: dict[str, str]) -> dict[str, Any]:
    return {name: column_value(turn, name, kind) for name, kind in columns.items()}


def sample_row(
    sample: Sample, shard: str, sha256: str, metric_names: list[str], columns: dict[str, str] | None = None
) -> dict[str, Any]:
    """The manifest row of a kept sample (``metric_names``: the metric columns; ``columns``: the other
    declared columns, name -> kind), with the first spoken turn's values."""
    spoken = sample.spoken_turns()
    first = spoken[0] if spoken else None
    counts = [0 if t.tokens is None else len(t.tokens) for t in spoken]
    row = SampleRow(
        id=sample.id,
        index=sample.index,
        source=sample.source,
        shard=shard,
        key=sample.id,
        task=sample.task or "",
        prompt=sample.prompt,
        response=sample.response,
        voice=first.voice if first else None,
        origin=first.origin if first else None,
        n_turns=len(sample.turns),
        n_spoken_turns=len(spoken),
        duration_s=round(sample.duration_s, METRIC_DECIMALS),
        n_sound_tokens=sum(counts),
        max_turn_sound_tokens=max(counts, default=0),
        sha256=sha256,
    )
    return {**msgspec.structs.asdict(row), **_metrics(first, metric_names), **_columns(first, columns or {})}


def failing_turn(sample: Sample) -> Turn | None:
    """The turn a rejected sample failed on, else (a reason about the whole item) its first spoken turn."""
    reject, turns = sample.reject, sample.turns
    if reject is not None and reject.turn is not None and 0 <= reject.turn < len(turns):
        return turns[reject.turn]
    return next((t for t in turns if t.spoken), None)


def reject_record(sample: Sample) -> RejectRecord:
    """The json member of a rejected sample's kept audio (the failing turn's)."""
    reject = sample.reject
    assert reject is not None
    turn = failing_turn(sample)
    return RejectRecord(
        id=sample.id,
        index=sample.index,
        source=sample.source,
        task=sample.task,
        stage=reject.stage,
        reason=reject.reason,
        value=None if reject.value is None else metric_value(reject.value),
        detail=reject.detail,
        turn=reject.turn,
        prompt=turn.text if turn is not None and reject.turn is not None else sample.prompt,
        response=sample.response,
        voice=turn.voice if turn is not None else None,
        duration_s=round(turn.duration_s, METRIC_DECIMALS) if turn is not None else 0.0,
        metrics={k: metric_value(v) for k, v in sorted((turn.metrics if turn else {}).items())},
    )


def reject_row(
    sample: Sample, metric_names: list[str], columns: dict[str, str] | None = None
) -> dict[str, Any]:
    """The manifest row of a rejected sample: the failing turn's text, voice and metrics when the reason
    came from one turn, else the first spoken turn's."""
    reject = sample.reject
    assert reject is not None
    turn = failing_turn(sample)
    row = RejectRow(
        id=sample.id,
        index=sample.index,
        source=sample.source,
        task=sample.task,
        stage=reject.stage,
        reason=reject.reason,
        value=None if reject.value is None else float(reject.value),
        detail=reject.detail,
        turn=reject.turn,
        prompt=turn.text if turn is not None and reject.turn is not None else sample.prompt,
        voice=turn.voice if turn is not None else None,
        origin=turn.origin if turn is not None else None,
        duration_s=round(turn.duration_s, METRIC_DECIMALS)
        if turn is not None and turn.audio is not None
        else None,
    )
    return {**msgspec.structs.asdict(row), **_metrics(turn, metric_names), **_columns(turn, columns or {})}


def column_names(struct: type[msgspec.Struct]) -> list[str]:
    return [f.name for f in msgspec.structs.fields(struct)]


def _base_type(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def arrow_columns(struct: type[msgspec.Struct]) -> list[tuple[str, Any]]:
    """The Parquet columns (name, pyarrow type) of a manifest row struct."""
    import pyarrow as pa

    types_ = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    return [(f.name, types_[_base_type(f.type)]) for f in msgspec.structs.fields(struct)]


def record_feature(
    struct: type[msgspec.Struct], metric_names: list[str], label_names: list[str] | tuple[str, ...] = ()
) -> Any:
    """The 🤗 ``datasets`` feature of a json member described by ``struct`` (keys in name order; a
    ``metrics`` dict: one float per metric name; a ``labels`` dict: one string per label name, left out
    when there are none, as the records leave it out)."""
    from datasets import List, Value

    scalars = {str: Value("string"), int: Value("int64"), float: Value("float64")}

    def feature(annotation: Any) -> Any:
        annotation = _base_type(annotation)
        if annotation in scalars:
            return scalars[annotation]
        origin = typing.get_origin(annotation)
        if origin is list:
            return List(feature(typing.get_args(annotation)[0]))
        if origin is dict and typing.get_args(annotation)[1] is str:  # labels: one string per name
            return {name: Value("string") for name in label_names}
        if origin is dict:  # the metrics: one float per registered metric name
            return {name: Value("float64") for name in metric_names}
        if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
            return {
                f.name: feature(f.type)
                for f in sorted(msgspec.structs.fields(annotation), key=lambda f: f.name)
                if f.name != "labels" or label_names
            }
        raise TypeError(f"no datasets feature for {annotation!r}")

    return feature(struct)


def hf_features(
    metric_names: list[str], keep_audio: bool, label_names: list[str] | tuple[str, ...] = ()
) -> Any:
    """The 🤗 ``datasets`` features of one WebDataset sample (from :class:`SampleRecord`), so loading
    needs no audio decoder."""
    from datasets import Features, List, Value

    features = {"__key__": Value("string"), "json": record_feature(SampleRecord, metric_names, label_names)}
    features["tokens.npy"] = List(Value("int16"))
    if keep_audio:
        features["flac"] = Value("binary")
    features["__url__"] = Value("string")
    return Features(features)
