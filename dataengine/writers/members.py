"""What one kept sample looks like inside a shard: the member files and the sample's hash.

The fields of each member are defined in :mod:`dataengine.schema`.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np

from dataengine.audio.io import encode_flac
from dataengine.sample import AUDIO_SAMPLE_RATE, Sample
from dataengine.schema import METRIC_DECIMALS, encode_record, failing_turn, reject_record, sample_record

__all__ = [
    "METRIC_DECIMALS",
    "members_digest",
    "reject_flac",
    "reject_members",
    "sample_flac",
    "sample_members",
    "tokens_npy",
]


def tokens_npy(tokens: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(tokens, dtype=np.int16), allow_pickle=False)
    return buffer.getvalue()


def sample_flac(sample: Sample) -> bytes | None:
    """The ``flac`` member of a kept sample: every spoken turn's audio, in conversation order."""
    audio = [t.audio for t in sample.spoken_turns() if t.audio is not None]
    return encode_flac(np.concatenate(audio), AUDIO_SAMPLE_RATE) if audio else None


def reject_flac(sample: Sample) -> bytes | None:
    """The ``flac`` member of a reject's kept audio: its failing turn's (None without audio)."""
    turn = failing_turn(sample)
    if turn is None or turn.audio is None or not len(turn.audio):
        return None
    return encode_flac(turn.audio, AUDIO_SAMPLE_RATE)


def sample_members(sample: Sample, keep_audio: bool) -> dict[str, bytes]:
    """Member extension -> bytes, as written to the tar file under ``<key>.<ext>``: the json record,
    the codes of every spoken turn in conversation order, and (``keep_audio``) their audio: the FLAC a
    worker already encoded into ``sample.flac`` when there is one."""
    record = sample_record(sample)
    spoken = sample.spoken_turns()
    codes = [t.tokens for t in spoken if t.tokens is not None]
    members = {
        "json": encode_record(record),
        "tokens.npy": tokens_npy(np.concatenate(codes) if codes else np.zeros(0)),
    }
    if keep_audio:
        flac = sample.flac if sample.flac is not None else sample_flac(sample)
        if flac is not None:
            members["flac"] = flac
    return members


def reject_members(sample: Sample) -> dict[str, bytes] | None:
    """``json`` (:class:`~dataengine.schema.RejectRecord`) + ``flac`` of a rejected sample's failing
    turn, when it has audio (None without: rejected before TTS, or text only)."""
    flac = sample.flac if sample.flac is not None else reject_flac(sample)
    if flac is None:
        return None
    return {"json": encode_record(reject_record(sample)), "flac": flac}


def members_digest(members: dict[str, bytes]) -> str:
    """sha256 over every member (extension, length, bytes) in name order: the sample's identity."""
    digest = hashlib.sha256()
    for ext in sorted(members):
        payload = members[ext]
        digest.update(f"{ext}\0{len(payload)}\0".encode())
        digest.update(payload)
    return digest.hexdigest()
