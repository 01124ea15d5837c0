"""Rows in, rows sorted by a key out, in bounded memory: an external merge sort over sorted runs.

The ordered writer sees each task stream's rows in that stream's order, which is already by source
index, but the streams interleave by the task mix, and the manifest is sorted by index over all of
them. Each row goes to the open *run* whose last key is the largest one not above its own (patience
sorting), so rows that are a merge of S sorted streams make S runs. A run is an Arrow IPC file on disk,
written in small batches; at the end the runs are merged (in passes of at most :data:`FAN_IN` when there
are more) into batches of :data:`OUT_ROWS` rows. Memory: one small buffer per open run while rows come,
one batch per run while merging, whatever the number of rows.
"""

from __future__ import annotations

import heapq
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

RUN_ROWS = 512
"""Rows a run buffers before it writes them as one batch (and what the merge reads at a time)."""
MAX_OPEN = 16
"""Open runs at most; a row that fits none of them when this many are open waits in a chunk of
:data:`CHUNK_ROWS` rows that is sorted and written as a run of its own when full (rows in no order at all
thus make runs of that size)."""
CHUNK_ROWS = 4096
FAN_IN = 16
"""Runs merged at once; more are first merged in passes."""
OUT_ROWS = 2048
"""Rows per merged batch: one DuckDB vector, so a COPY groups rows as it does from one table."""
SEQ = "__seq"
"""The arrival number, stored in the runs: it breaks ties, so equal keys keep their arrival order."""

Key = tuple[Any, ...]


@dataclass
class _Run:
    path: Path
    schema: pa.Schema
    last: Key | None = None
    buffer: list[dict[str, Any]] = field(default_factory=list)
    writer: pa.ipc.RecordBatchStreamWriter | None = None

    def add(self, key: Key, row: dict[str, Any]) -> None:
        self.last = key
        self.buffer.append(row)
        if len(self.buffer) >= RUN_ROWS:
            self.flush()

    def write(self, batch: pa.RecordBatch) -> None:
        if self.writer is None:
            options = pa.ipc.IpcWriteOptions(compression="zstd")
            self.writer = pa.ipc.new_stream(pa.OSFile(str(self.path), "wb"), self.schema, options=options)
        self.writer.write_batch(batch)

    def flush(self) -> None:
        if self.buffer:
            self.write(pa.RecordBatch.from_pylist(self.buffer, schema=self.schema))
            self.buffer = []

    def finish(self) -> None:
        """Write what is buffered and close the file (an empty run is an empty stream)."""
        self.flush()
        if self.writer is None:
            self.write(pa.RecordBatch.from_pylist([], schema=self.schema))
        assert self.writer is not None
        self.writer.close()


class SortedSpool:
    """Collects rows (dicts matching ``schema``) in any order; :meth:`sorted_batches` gives them back
    sorted by the values of ``key_columns`` (ties in arrival order). The run files live in ``folder``
    until :meth:`close`."""

    def __init__(self, folder: Path, schema: pa.Schema, key_columns: list[str]) -> None:
        self.folder = folder
        self.schema = schema
        self.run_schema = schema.append(pa.field(SEQ, pa.int64()))
        self.key_columns = key_columns
        self.count = 0
        self._open: list[_Run] = []
        self._done: list[Path] = []
        self._chunk: list[tuple[Key, dict[str, Any]]] = []
        self._names = 0
        folder.mkdir(parents=True, exist_ok=True)

    def _new_run(self) -> _Run:
        self._names += 1
        return _Run(self.folder / f"run-{self._names:06d}.arrow", self.run_schema)

    def add(self, row: dict[str, Any]) -> None:
        key = (*(row[name] for name in self.key_columns), self.count)
        row = {**row, SEQ: self.count}
        self.count += 1
        best = None
        for run in self._open:  # the run with the largest last key <= key
            if run.last is not None and run.last <= key and (best is None or run.last > best.last):
                best = run
        if best is None and len(self._open) >= MAX_OPEN:
            self._chunk.append((key, row))
            if len(self._chunk) >= CHUNK_ROWS:
                self._write_chunk()
            return
        if best is None:
            best = self._new_run()
            self._open.append(best)
        best.add(key, row)

    def _write_chunk(self) -> None:
        """The waiting rows, sorted, as a finished run."""
        if not self._chunk:
            return
        self._chunk.sort(key=lambda item: item[0])
        run = self._new_run()
        for start in range(0, len(self._chunk), RUN_ROWS):
            part = [row for _, row in self._chunk[start : start + RUN_ROWS]]
            run.write(pa.RecordBatch.from_pylist(part, schema=self.run_schema))
        run.finish()
        self._done.append(run.path)
        self._chunk = []

    def _keys(self, path: Path, key_columns: list[str]) -> Iterator[tuple[Any, ...]]:
        """(key..., seq, batch, position) of every row of one run, in order."""
        with pa.OSFile(str(path), "rb") as handle:
            reader = pa.ipc.open_stream(handle)
            for batch in reader:
                columns = [batch.column(name).to_pylist() for name in (*key_columns, SEQ)]
                for position, values in enumerate(zip(*columns, strict=True)):
                    yield (*values, batch, position)

    def _merge(self, paths: list[Path], rows: int) -> Iterator[pa.RecordBatch]:
        """The rows of sorted runs ``paths``, merged, as batches of ``rows`` rows (with ``SEQ``)."""
        key_columns = self.key_columns
        width = len(key_columns) + 1
        merged = heapq.merge(*(self._keys(path, key_columns) for path in paths))
        while True:
            window = [entry[width:] for _, entry in zip(range(rows), merged, strict=False)]
            if not window:
                return
            batches: dict[int, int] = {}  # id(batch) -> its offset in the window's table
            sources: list[pa.RecordBatch] = []
            offset, take = 0, []
            for batch, position in window:
                start = batches.get(id(batch))
                if start is None:
                    start = batches[id(batch)] = offset
                    sources.append(batch)
                    offset += batch.num_rows
                take.append(start + position)
            table = pa.Table.from_batches(sources, schema=self.run_schema).take(pa.array(take))
            yield from table.combine_chunks().to_batches(max_chunksize=rows)

    def sorted_batches(self) -> Iterator[pa.RecordBatch]:
        """Every row, sorted by key, in batches of :data:`OUT_ROWS` rows (without the arrival column)."""
        self._write_chunk()
        for run in self._open:
            run.finish()
        paths = self._done + [run.path for run in self._open]
        self._open, self._done = [], []
        while len(paths) > FAN_IN:  # merge passes until one merge can take them all
            merged: list[Path] = []
            for start in range(0, len(paths), FAN_IN):
                out = self._new_run()
                for batch in self._merge(paths[start : start + FAN_IN], RUN_ROWS):
                    out.write(batch)
                out.finish()
                for path in paths[start : start + FAN_IN]:
                    path.unlink()
                merged.append(out.path)
            paths = merged
        names = [f.name for f in self.schema]
        for batch in self._merge(paths, OUT_ROWS):
            yield batch.select(names)

    def close(self) -> None:
        """Remove the run files."""
        for run in self._open:
            if run.writer is not None:
                run.writer.close()
        self._open = []
        shutil.rmtree(self.folder, ignore_errors=True)
