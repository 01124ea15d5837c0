"""The DuckDB-queryable manifest: one Parquet row per kept sample and one per rejected item.

The columns are defined in :mod:`dataengine.schema` (rows) and by the registered stages (metrics).
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa

from dataengine.crashpoints import crash_point
from dataengine.sample import Sample
from dataengine.schema import RejectRow, SampleRow, arrow_columns, reject_row, sample_row
from dataengine.writers.runs import SortedSpool

COLUMN_TYPES: dict[str, pa.DataType] = {"string": pa.string(), "int16[]": pa.list_(pa.int16())}
"""The Parquet type of each declared column kind (:data:`dataengine.schema.COLUMN_KINDS`)."""
SAMPLES_FILE = "samples.parquet"
REJECTS_FILE = "rejects.parquet"
ROW_GROUP_ROWS = 16_384
"""Rows per Parquet row group. DuckDB's Parquet writer holds a whole row group in memory (~1-2 kB a row
here): with its default of 122,880 rows a million-row build's peak RSS rose by ~180 MB at the end. A file
of at most this many rows is one row group either way, so its bytes are those of the default."""
COPY_OPTIONS = f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS}"
SPOOL = ".spool"
"""Inside the manifest folder while the build runs: the rows so far, as sorted runs (removed by close)."""

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
    """Writes both Parquet files, sorted by source index, without holding the rows: each row goes to a
    :class:`~dataengine.writers.runs.SortedSpool` on disk as it arrives, and :meth:`close` merges the
    spooled runs straight into the files (temporary name, then rename).

    ``metric_names`` fixes the metric columns (one float column each, null where not measured), so
    the schema does not depend on which samples happened to reach which stage. The bytes equal those of
    one ``COPY (SELECT * FROM rows ORDER BY "index", id)`` over all rows (what this writer did when it
    kept them in memory): the merged rows reach DuckDB's Parquet writer through Arrow with the same
    schema, in the same order and vector sizes; only a file of more than :data:`ROW_GROUP_ROWS` rows
    is cut into smaller row groups than before.
    """

    def __init__(self, folder: Path, metric_names: list[str], columns: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.columns = dict(columns or {})
        """Declared non-metric columns (name -> kind), after the metric columns."""
        self.sample_metrics = _metric_columns(metric_names, SAMPLE_COLUMNS)  # e.g. duration_s is a column
        self.reject_metrics = _metric_columns(metric_names, REJECT_COLUMNS)  # n_sound_tokens is a metric
        self.kept = 0
        self.rejected = 0
        self.tasks: Counter[str] = Counter()
        """Kept samples per task."""
        self.reasons: Counter[str] = Counter()
        """Rejects per ``stage/reason``."""
        self._spools = {
            SAMPLES_FILE: self._spool("samples", SAMPLE_COLUMNS, self.sample_metrics),
            REJECTS_FILE: self._spool("rejects", [*REJECT_COLUMNS, REJECT_AUDIO_COLUMN], self.reject_metrics),
        }

    def _spool(self, name: str, columns: list[tuple[str, pa.DataType]], metrics: list[str]) -> SortedSpool:
        extra = [(column, COLUMN_TYPES[kind]) for column, kind in self.columns.items()]
        schema = pa.schema(columns + [(metric, pa.float64()) for metric in metrics] + extra)
        return SortedSpool(self.folder / SPOOL / name, schema, ["index", "id"])

    def add_kept(self, sample: Sample, shard: str, sha256: str) -> None:
        row = sample_row(sample, shard, sha256, self.sample_metrics, self.columns)
        self._spools[SAMPLES_FILE].add(row)
        self.kept += 1
        self.tasks[row["task"]] += 1

    def add_reject(self, sample: Sample, shard: str | None = None) -> None:
        """A rejected sample's row; ``shard``: the ``rejected/`` file holding its audio, if kept."""
        row = reject_row(sample, self.reject_metrics, self.columns)
        self._spools[REJECTS_FILE].add({**row, REJECT_AUDIO_COLUMN[0]: shard})
        self.rejected += 1
        self.reasons[f"{row['stage']}/{row['reason']}"] += 1

    def close(self) -> None:
        """Write both files (temporary name, then rename) and remove the spooled runs."""
        self.folder.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect()
        try:
            con.execute("SET threads = 1")
            for name, spool in self._spools.items():
                rows = pa.RecordBatchReader.from_batches(spool.schema, spool.sorted_batches())  # noqa: F841 - read by DuckDB's replacement scan
                tmp = self.folder / f".{name}.tmp"
                con.execute(f"COPY (SELECT * FROM rows) TO '{tmp}' ({COPY_OPTIONS})")
                os.replace(tmp, self.folder / name)
                spool.close()
                crash_point("manifest")
        finally:
            con.close()
            self.discard()

    def discard(self) -> None:
        """Remove the spooled runs (a build that stops early; a crash leaves them in the staging folder,
        which the next build removes)."""
        for spool in self._spools.values():
            spool.close()
        shutil.rmtree(self.folder / SPOOL, ignore_errors=True)
