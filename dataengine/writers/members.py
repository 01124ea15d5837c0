"""What one kept sample looks like inside a shard: the member files and the sample's hash."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np

from dataengine.audio.io import encode_flac
from dataengine.sample import AUDIO_SAMPLE_RATE, Sample

METRIC_DECIMALS = 4


def sample_record(sample: Sample) -> dict[str, Any]:
    """The JSON metadata of a kept sample; the manifest row adds its shard and hash."""
    return {
        "id": sample.id,
        "index": sample.index,
        "source": sample.source,
        "task": sample.task,
        "prompt": sample.prompt,
        "response": sample.response,
        "voice": sample.voice,
        "duration_s": round(sample.duration_s, METRIC_DECIMALS),
        "n_sound_tokens": 0 if sample.tokens is None else len(sample.tokens),
        "metrics": {k: round(float(v), METRIC_DECIMALS) for k, v in sorted(sample.metrics.items())},
        "conversations": sample.text.get("conversations", []),
    }


def tokens_npy(tokens: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(tokens, dtype=np.int16), allow_pickle=False)
    return buffer.getvalue()


def sample_members(sample: Sample, keep_audio: bool) -> dict[str, bytes]:
    """Member extension -> bytes, as written to the tar file under ``<key>.<ext>``."""
    record = sample_record(sample)
    members = {
        "json": json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8"),
        "tokens.npy": tokens_npy(sample.tokens if sample.tokens is not None else np.zeros(0)),
    }
    if keep_audio and sample.audio is not None:
        members["flac"] = encode_flac(sample.audio, AUDIO_SAMPLE_RATE)
    return members


def reject_record(sample: Sample) -> dict[str, Any]:
    """The JSON metadata of a rejected sample: why it was dropped and what was measured until then."""
    reject = sample.reject
    assert reject is not None
    return {
        "id": sample.id,
        "index": sample.index,
        "source": sample.source,
        "stage": reject.stage,
        "reason": reject.reason,
        "value": None if reject.value is None else round(float(reject.value), METRIC_DECIMALS),
        "detail": reject.detail,
        "prompt": sample.prompt,
        "response": sample.response,
        "voice": sample.voice,
        "duration_s": round(sample.duration_s, METRIC_DECIMALS),
        "metrics": {k: round(float(v), METRIC_DECIMALS) for k, v in sorted(sample.metrics.items())},
    }


def reject_members(sample: Sample) -> dict[str, bytes] | None:
    """``json`` + ``flac`` of a rejected sample that has audio (None without audio: rejected before TTS)."""
    if sample.audio is None or not len(sample.audio):
        return None
    return {
        "json": json.dumps(reject_record(sample), ensure_ascii=False, sort_keys=True).encode("utf-8"),
        "flac": encode_flac(sample.audio, AUDIO_SAMPLE_RATE),
    }


def members_digest(members: dict[str, bytes]) -> str:
    """sha256 over every member (extension, length, bytes) in name order: the sample's identity."""
    digest = hashlib.sha256()
    for ext in sorted(members):
        payload = members[ext]
        digest.update(f"{ext}\0{len(payload)}\0".encode())
        digest.update(payload)
    return digest.hexdigest()
