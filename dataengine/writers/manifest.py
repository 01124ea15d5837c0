"""The DuckDB-queryable manifest: one Parquet row per kept sample and one per rejected item."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dataengine.crashpoints import crash_point
from dataengine.sample import Sample
from dataengine.writers.members import METRIC_DECIMALS

SAMPLES_FILE = "samples.parquet"
REJECTS_FILE = "rejects.parquet"

SAMPLE_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("id", pa.string()),
    ("index", pa.int64()),
    ("source", pa.string()),
    ("shard", pa.string()),
    ("key", pa.string()),
    ("task", pa.string()),
    ("prompt", pa.string()),
    ("response", pa.string()),
    ("voice", pa.string()),
    ("duration_s", pa.float64()),
    ("n_sound_tokens", pa.int64()),
    ("sha256", pa.string()),
]
REJECT_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("id", pa.string()),
    ("index", pa.int64()),
    ("source", pa.string()),
    ("stage", pa.string()),
    ("reason", pa.string()),
    ("value", pa.float64()),
    ("detail", pa.string()),
    ("prompt", pa.string()),
    ("voice", pa.string()),
    ("duration_s", pa.float64()),
]
REJECT_AUDIO_COLUMN: tuple[str, pa.DataType] = ("shard", pa.string())
"""Written after :data:`REJECT_COLUMNS`: the file under ``rejected/`` holding the sample's audio (null:
none was kept). Not required of a manifest: builds made before rejected audio was kept lack it."""


def _metric_columns(metric_names: list[str], columns: list[tuple[str, pa.DataType]]) -> list[str]:
    """The metrics that get a column of their own in a table with ``columns`` (not already one of them)."""
    base = {name for name, _ in columns}
    return [name for name in metric_names if name not in base]


class ManifestWriter:
    """Collects rows as samples arrive and writes both Parquet files once, sorted by source index.

    ``metric_names`` fixes the metric columns (one float column each, null where not measured), so
    the schema does not depend on which samples happened to reach which stage.
    """

    def __init__(self, folder: Path, metric_names: list[str]) -> None:
        self.folder = folder
        self.sample_metrics = _metric_columns(metric_names, SAMPLE_COLUMNS)  # e.g. duration_s is a column
        self.reject_metrics = _metric_columns(metric_names, REJECT_COLUMNS)  # n_sound_tokens is a metric
        self.samples: list[dict[str, Any]] = []
        self.rejects: list[dict[str, Any]] = []

    @staticmethod
    def _metrics(sample: Sample, names: list[str]) -> dict[str, float | None]:
        return {
            name: (round(float(sample.metrics[name]), METRIC_DECIMALS) if name in sample.metrics else None)
            for name in names
        }

    def add_kept(self, sample: Sample, shard: str, sha256: str) -> None:
        self.samples.append(
            {
                "id": sample.id,
                "index": sample.index,
                "source": sample.source,
                "shard": shard,
                "key": sample.id,
                "task": sample.task,
                "prompt": sample.prompt,
                "response": sample.response,
                "voice": sample.voice,
                "duration_s": round(sample.duration_s, METRIC_DECIMALS),
                "n_sound_tokens": 0 if sample.tokens is None else len(sample.tokens),
                "sha256": sha256,
                **self._metrics(sample, self.sample_metrics),
            }
        )

    def add_reject(self, sample: Sample, shard: str | None = None) -> None:
        reject = sample.reject
        assert reject is not None
        self.rejects.append(
            {
                "id": sample.id,
                "index": sample.index,
                "source": sample.source,
                "stage": reject.stage,
                "reason": reject.reason,
                "value": None if reject.value is None else float(reject.value),
                "detail": reject.detail,
                "prompt": sample.prompt,
                "voice": sample.voice,
                "duration_s": round(sample.duration_s, METRIC_DECIMALS) if sample.audio is not None else None,
                "shard": shard,
                **self._metrics(sample, self.reject_metrics),
            }
        )

    @staticmethod
    def _table(
        rows: list[dict[str, Any]], columns: list[tuple[str, pa.DataType]], metrics: list[str]
    ) -> pa.Table:
        fields = columns + [(name, pa.float64()) for name in metrics]
        schema = pa.schema(fields)
        return pa.Table.from_pylist(rows, schema=schema)

    def close(self) -> None:
        """Write both files (temporary name, then rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect()
        try:
            con.execute("SET threads = 1")
            for name, rows, columns, metrics in (
                (SAMPLES_FILE, self.samples, SAMPLE_COLUMNS, self.sample_metrics),
                (REJECTS_FILE, self.rejects, [*REJECT_COLUMNS, REJECT_AUDIO_COLUMN], self.reject_metrics),
            ):
                rows_table = self._table(rows, columns, metrics)  # noqa: F841 - read by DuckDB's replacement scan
                tmp = self.folder / f".{name}.tmp"
                con.execute(
                    f"COPY (SELECT * FROM rows_table ORDER BY \"index\", id) TO '{tmp}' "
                    "(FORMAT parquet, COMPRESSION zstd)"
                )
                os.replace(tmp, self.folder / name)
                crash_point("manifest")
        finally:
            con.close()
