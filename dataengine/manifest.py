"""Read a build's manifest with DuckDB: views ``samples`` and ``rejects``, isolated from the disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from dataengine.writers.manifest import REJECTS_FILE, SAMPLES_FILE

COMPLETE_MARK = "build.json"
"""Written last (and removed first) when a build is published: a folder without it is not whole."""


class ManifestError(ValueError):
    """The folder has no readable manifest, or the SQL failed; one line for the user."""


def open_manifest(out: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding tables ``samples`` and ``rejects``; file access is then switched off,
    so user SQL can read the manifest but cannot read or write anything else."""
    folder = Path(out) / "manifest"
    missing = [name for name in (SAMPLES_FILE, REJECTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise ManifestError(f"{out}: not a dataengine build (missing manifest/{missing[0]})")
    if not (Path(out) / COMPLETE_MARK).is_file():
        raise ManifestError(f"{out}: incomplete build (interrupted while being written); run the build again")
    con = duckdb.connect()
    for table, name in (("samples", SAMPLES_FILE), ("rejects", REJECTS_FILE)):
        path = str(folder / name).replace("'", "''")
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{path}')")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run_query(out: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of ``sql`` over the manifest."""
    con = open_manifest(out)
    try:
        cursor = con.execute(sql)
        if cursor.description is None:
            return [], []
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()
    except duckdb.Error as exc:
        raise ManifestError(str(exc).strip().splitlines()[0]) from None
    finally:
        con.close()
