"""The DuckDB-queryable manifest: one Parquet row per kept sample and one per rejected item.

The columns are defined in :mod:`dataengine.schema` (rows) and by the registered stages (metrics).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dataengine.crashpoints import crash_point
from dataengine.sample import Sample
from dataengine.schema import RejectRow, SampleRow, arrow_columns, reject_row, sample_row

COLUMN_TYPES: dict[str, pa.DataType] = {"string": pa.string(), "int16[]": pa.list_(pa.int16())}
"""The Parquet type of each declared column kind (:data:`dataengine.schema.COLUMN_KINDS`)."""
SAMPLES_FILE = "samples.parquet"
REJECTS_FILE = "rejects.parquet"

SAMPLE_COLUMNS: list[tuple[str, pa.DataType]] = arrow_columns(SampleRow)
"""The base columns of ``samples.parquet`` (the metric columns follow)."""
REJECT_COLUMNS: list[tuple[str, pa.DataType]] = arrow_columns(RejectRow)
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

    def __init__(self, folder: Path, metric_names: list[str], columns: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.columns = dict(columns or {})
        """Declared non-metric columns (name -> kind), after the metric columns."""
        self.sample_metrics = _metric_columns(metric_names, SAMPLE_COLUMNS)  # e.g. duration_s is a column
        self.reject_metrics = _metric_columns(metric_names, REJECT_COLUMNS)  # n_sound_tokens is a metric
        self.samples: list[dict[str, Any]] = []
        self.rejects: list[dict[str, Any]] = []

    def add_kept(self, sample: Sample, shard: str, sha256: str) -> None:
        self.samples.append(sample_row(sample, shard, sha256, self.sample_metrics, self.columns))

    def add_reject(self, sample: Sample, shard: str | None = None) -> None:
        """A rejected sample's row; ``shard``: the ``rejected/`` file holding its audio, if kept."""
        row = reject_row(sample, self.reject_metrics, self.columns)
        self.rejects.append({**row, REJECT_AUDIO_COLUMN[0]: shard})

    def _table(
        self, rows: list[dict[str, Any]], columns: list[tuple[str, pa.DataType]], metrics: list[str]
    ) -> pa.Table:
        extra = [(name, COLUMN_TYPES[kind]) for name, kind in self.columns.items()]
        schema = pa.schema(columns + [(name, pa.float64()) for name in metrics] + extra)
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
