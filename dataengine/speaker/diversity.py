"""How many different voices a build holds, measured on the speaker embeddings of its kept turns.

Read from ``manifest/speakers.parquet`` in row batches (two passes; memory grows with the number of voices,
not of turns). A voice's centroid is the normalised mean of its turns' embeddings. The estimate of distinct
speakers is average-linkage clustering of the centroids cut at :data:`SAME_SPEAKER_DISTANCE` (scipy,
deterministic for a given input order: voices sorted by name).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.sample import RECORDING, TTS
from dataengine.writers.speakers import SPEAKERS_FILE

SAME_SPEAKER_DISTANCE = 0.2
"""Centroids closer than this (cosine distance) count as one speaker. Measured with this encoder: a voice's
turns lie 0.04-0.09 (TTS) and 0.11-0.19 (Allison's recordings) from their own centroid; centroids of
different voices 0.26-0.62 apart (Piper, espeak-ng, Kokoro tables and a blend, Allison, CMU ARCTIC)."""
_BATCH = 8192


@dataclass
class VoiceStats:
    voice: str
    turns: int
    spread: float
    """Mean cosine distance of the voice's turns to its centroid."""
    nearest_voice: str | None = None
    nearest_voice_distance: float | None = None
    nearest_recording_distance: float | None = None
    """Distance of the centroid to the closest real-recording turn (null: no recording in the build)."""


@dataclass
class Diversity:
    tts_voices: int
    tts_turns: int
    recording_turns: int
    recording_speakers: int
    """Distinct ``voice`` values of recording turns (recordings without one count as one unnamed group)."""
    distinct_speakers: int | None
    """Clusters of voice centroids (TTS voices and named recording speakers); null without embeddings."""
    mean_pairwise_distance: float | None
    """Mean cosine distance between TTS voice centroids (null: fewer than two voices, or no embeddings)."""
    min_pairwise_distance: float | None
    threshold: float = SAME_SPEAKER_DISTANCE
    embeddings_stored: bool = True
    voices: list[VoiceStats] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batches(path: Path, columns: list[str]):
    import pyarrow.parquet as pq

    yield from pq.ParquetFile(path).iter_batches(batch_size=_BATCH, columns=columns)


def _embeddings(batch: Any) -> np.ndarray:
    column = batch.column("embedding")
    flat = column.values.to_numpy(zero_copy_only=False).astype(np.float64)
    return flat.reshape(len(column), -1) if len(column) else flat.reshape(0, 0)


def voice_diversity(out: Path, threshold: float = SAME_SPEAKER_DISTANCE) -> Diversity | None:
    """The build's voice diversity, or None when it has no speaker table (speaker stage off)."""
    path = Path(out) / "manifest" / SPEAKERS_FILE
    if not path.is_file():
        return None
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    recording_voices: set[str] = set()
    recording_sums: dict[str, np.ndarray] = {}
    recording_turns = 0
    stored = True
    for batch in _batches(path, ["origin", "voice", "embedding"]):
        origins = batch.column("origin").to_pylist()
        voices = batch.column("voice").to_pylist()
        if batch.column("embedding").null_count:
            stored = False
        emb = _embeddings(batch) if stored else None
        for row, (origin, voice) in enumerate(zip(origins, voices, strict=True)):
            if origin == RECORDING:
                recording_turns += 1
                name = voice or "(unnamed recordings)"
                recording_voices.add(name)
                if emb is not None and voice:
                    recording_sums[name] = recording_sums.get(name, 0) + emb[row]
            elif origin == TTS and voice:
                counts[voice] = counts.get(voice, 0) + 1
                if emb is not None:
                    sums[voice] = sums.get(voice, 0) + emb[row]
    names = sorted(counts)
    report = Diversity(
        tts_voices=len(names),
        tts_turns=sum(counts.values()),
        recording_turns=recording_turns,
        recording_speakers=len(recording_voices),
        distinct_speakers=None,
        mean_pairwise_distance=None,
        min_pairwise_distance=None,
        threshold=threshold,
        embeddings_stored=stored,
    )
    if not stored:
        report.voices = [VoiceStats(v, counts[v], float("nan")) for v in names]
        return report
    centroids = np.array([sums[v] / np.linalg.norm(sums[v]) for v in names]) if names else np.zeros((0, 256))
    spread = np.zeros(len(names))
    nearest_rec = np.full(len(names), np.inf)
    position = {v: i for i, v in enumerate(names)}
    for batch in _batches(path, ["origin", "voice", "embedding"]):
        emb = _embeddings(batch)
        for row, (origin, voice) in enumerate(
            zip(batch.column("origin").to_pylist(), batch.column("voice").to_pylist(), strict=True)
        ):
            if origin == TTS and voice in position:
                spread[position[voice]] += 1.0 - emb[row] @ centroids[position[voice]]
            elif origin == RECORDING and len(names):
                nearest_rec = np.minimum(nearest_rec, 1.0 - centroids @ emb[row])
    pairwise = 1.0 - centroids @ centroids.T if len(names) else np.zeros((0, 0))
    np.fill_diagonal(pairwise, np.inf)
    for i, voice in enumerate(names):
        stats = VoiceStats(voice, counts[voice], round(max(0.0, float(spread[i] / counts[voice])), 4))
        if len(names) > 1:
            j = int(np.argmin(pairwise[i]))
            stats.nearest_voice, stats.nearest_voice_distance = names[j], round(float(pairwise[i, j]), 4)
        if recording_turns:
            stats.nearest_recording_distance = round(float(nearest_rec[i]), 4)
        report.voices.append(stats)
    if len(names) > 1:
        upper = pairwise[np.triu_indices(len(names), k=1)]
        report.mean_pairwise_distance = round(float(upper.mean()), 4)
        report.min_pairwise_distance = round(float(upper.min()), 4)
    named = sorted(recording_sums)
    points = np.vstack([centroids, *[recording_sums[v] / np.linalg.norm(recording_sums[v]) for v in named]])
    report.distinct_speakers = _clusters(points, threshold) if len(points) else 0
    return report


def _clusters(points: np.ndarray, threshold: float) -> int:
    """Number of average-linkage clusters of unit vectors cut at cosine distance ``threshold``."""
    if len(points) < 2:
        return len(points)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    distances = np.clip(pdist(points, "cosine"), 0.0, 2.0)
    labels = fcluster(linkage(distances, method="average"), t=threshold, criterion="distance")
    return int(len(set(labels.tolist())))


def summary_lines(report: Diversity) -> list[str]:
    """The report as ``inspect`` prints it."""

    def num(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        "voice diversity (speaker embeddings, resemblyzer GE2E):",
        f"  TTS voices {report.tts_voices} over {report.tts_turns} turns; recordings "
        f"{report.recording_turns} turns, {report.recording_speakers} named speaker(s)",
    ]
    width = max([len("voice"), *(len(v.voice) for v in report.voices)])
    if not report.embeddings_stored:
        return [*lines, "  (embeddings not stored: speaker.store_embeddings is false)"]
    lines += [
        f"  estimated distinct speakers {report.distinct_speakers} (clusters at cosine distance "
        f"{report.threshold:g})",
        f"  cosine distance between voices: mean {num(report.mean_pairwise_distance)}, "
        f"closest pair {num(report.min_pairwise_distance)}",
        f"  {'voice':<{width}} {'turns':>5} {'spread':>6} {'nearest voice':>13} {'nearest real':>12}",
    ]
    for v in report.voices:
        lines.append(
            f"  {v.voice:<{width}} {v.turns:>5} {v.spread:>6.3f} {num(v.nearest_voice_distance):>13} "
            f"{num(v.nearest_recording_distance):>12}"
        )
    return lines
