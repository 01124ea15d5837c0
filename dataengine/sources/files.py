"""Local JSONL and Parquet files with a column mapping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from dataengine.errors import one_line
from dataengine.recipe import FilesSource, SettingError
from dataengine.sample import Sample
from dataengine.sources.rows import row_to_sample, safe_id


def _jsonl_rows(path: Path) -> Iterator[object]:
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                yield json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                yield ValueError("line is not valid UTF-8")
            except json.JSONDecodeError as exc:
                yield ValueError(f"not valid JSON: {exc.msg}")


def _parquet_rows(path: Path) -> Iterator[object]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        yield from batch.to_pylist()


SUFFIXES = (".jsonl", ".json", ".parquet")


def check_files(config: FilesSource) -> None:
    """Every path has a known type, and a ``.parquet`` file is Parquet (its footer is read)."""
    for n, path in enumerate(config.paths):
        if path.suffix not in SUFFIXES:
            raise SettingError(
                f"source.paths.{n}", f"{path}: unsupported file type (use {', '.join(SUFFIXES)})"
            )
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                pq.ParquetFile(path).close()
            except Exception as exc:  # noqa: BLE001 - ArrowInvalid, OSError: one line either way
                problem = f"{path}: not a Parquet file ({one_line(exc)})"
                raise SettingError(f"source.paths.{n}", problem) from None


def iter_files(config: FilesSource) -> Iterator[Sample]:
    """Rows of each file in order; ids are ``<file stem>-<row number>`` unless ``id_column`` is set."""
    for path in config.paths:
        stem = safe_id(path.stem)
        if path.suffix == ".parquet":
            rows = _parquet_rows(path)
        elif path.suffix in SUFFIXES:
            rows = _jsonl_rows(path)
        else:
            raise ValueError(f"{path}: unsupported file type (use {', '.join(SUFFIXES)})")
        for n, row in enumerate(rows):
            fallback = f"{stem}-{n:06d}"
            if isinstance(row, ValueError):
                sample = Sample(id=fallback, index=0, source=str(path.name))
                yield sample.drop("source", "bad_row", detail=str(row))
                continue
            yield row_to_sample(
                row,
                source=stem,
                fallback_id=fallback,
                prompt_column=config.prompt_column,
                response_column=config.response_column,
                id_column=config.id_column,
                messages_column=config.messages_column,
            )
