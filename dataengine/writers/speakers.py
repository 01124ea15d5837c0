"""``manifest/speakers.parquet``: one row per kept spoken turn that has a speaker embedding.

Written as the ordered writer goes (row groups of :data:`ROW_GROUP` rows), so memory does not grow with
the build; rows come in the order samples were written (join on ``id`` and ``turn``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dataengine.crashpoints import crash_point
from dataengine.sample import Sample
from dataengine.speaker.encoder import digest

SPEAKERS_FILE = "speakers.parquet"
ROW_GROUP = 4096
SPEAKER_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("id", pa.string()),
    ("index", pa.int64()),
    ("turn", pa.int64()),
    ("origin", pa.string()),
    ("voice", pa.string()),
    ("speaker_digest", pa.string()),
    ("drift", pa.float64()),
]
"""The columns besides ``embedding`` (list of float32, null when the recipe does not store them)."""
_SCHEMA = pa.schema([*SPEAKER_COLUMNS, ("embedding", pa.list_(pa.float32()))])


class SpeakerWriter:
    def __init__(self, folder: Path, store_embeddings: bool) -> None:
        self.folder = folder
        self.store = store_embeddings
        self.tmp = folder / f".{SPEAKERS_FILE}.tmp"
        self.rows: list[dict[str, object]] = []
        self.writer: pq.ParquetWriter | None = None

    def add(self, sample: Sample, drifts: dict[int, float | None]) -> None:
        for i, turn in enumerate(sample.turns):
            if turn.speaker_embedding is None:
                continue
            self.rows.append(
                {
                    "id": sample.id,
                    "index": sample.index,
                    "turn": i,
                    "origin": turn.origin,
                    "voice": turn.voice,
                    "speaker_digest": digest(turn.speaker_embedding),
                    "drift": None if drifts.get(i) is None else round(float(drifts[i]), 6),
                    "embedding": turn.speaker_embedding.tolist() if self.store else None,
                }
            )
        if len(self.rows) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.tmp, _SCHEMA, compression="zstd")
        self.writer.write_table(pa.Table.from_pylist(self.rows, schema=_SCHEMA), row_group_size=ROW_GROUP)
        self.rows = []

    def close(self) -> None:
        """Write what is left and move the file into place (an empty table when no turn had one)."""
        self._flush()
        assert self.writer is not None
        self.writer.close()
        os.replace(self.tmp, self.folder / SPEAKERS_FILE)
        crash_point("manifest")
