"""Read a build's manifest with DuckDB: tables ``samples``, ``rejects`` (and ``speakers`` when the speaker
stage ran), isolated from the disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dataengine.writers.manifest import REJECT_COLUMNS, REJECTS_FILE, SAMPLE_COLUMNS, SAMPLES_FILE
from dataengine.writers.speakers import SPEAKERS_FILE

COMPLETE_MARK = "build.json"
"""Written last (and removed first) when a build is published: a folder without it is not whole."""
_DUCKDB_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE"}
_TABLES = (("samples", SAMPLES_FILE, SAMPLE_COLUMNS), ("rejects", REJECTS_FILE, REJECT_COLUMNS))


class ManifestError(ValueError):
    """The folder has no readable manifest, or the SQL failed; one line for the user."""


def require_build(out: Path) -> None:
    """Raise ManifestError unless ``out`` holds both manifest files and the completion mark."""
    folder = Path(out) / "manifest"
    missing = [name for name in (SAMPLES_FILE, REJECTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise ManifestError(f"{out}: not a dataengine build (missing manifest/{missing[0]})")
    if not (Path(out) / COMPLETE_MARK).is_file():
        raise ManifestError(f"{out}: incomplete build (interrupted while being written); run the build again")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _load_table(con: duckdb.DuckDBPyConnection, table: str, path: Path, columns: list) -> None:
    """Create ``table`` from the Parquet file ``path``, refusing a file that is not a manifest of that kind
    (unreadable, or a base column missing or of another type), so later queries cannot fail on it."""
    quoted = str(path).replace("'", "''")
    try:
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{quoted}')")
    except duckdb.Error as exc:
        raise ManifestError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
    have = {name: kind for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall()}
    for name, arrow_type in columns:
        want = _DUCKDB_TYPES[arrow_type]
        if name not in have:
            raise ManifestError(f"{path}: not a dataengine manifest (no column {name!r})")
        if have[name] != want:
            raise ManifestError(
                f"{path}: not a dataengine manifest (column {name!r} is {have[name]}, expected {want})"
            )


def open_manifest(out: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding tables ``samples`` and ``rejects``; file access is then switched off,
    so user SQL can read the manifest but cannot read or write anything else."""
    require_build(out)
    con = duckdb.connect()
    try:
        for table, name, columns in _TABLES:
            _load_table(con, table, Path(out) / "manifest" / name, columns)
        speakers = Path(out) / "manifest" / SPEAKERS_FILE
        if speakers.is_file():  # only when the speaker stage ran; the embeddings stay in the file
            quoted = str(speakers).replace("'", "''")
            con.execute(
                f"CREATE TABLE speakers AS SELECT * EXCLUDE (embedding) FROM read_parquet('{quoted}')"
            )
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def run_query(out: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of ``sql`` over the manifest."""
    if not sql.strip():
        raise ManifestError('no SQL given (e.g. "select task, count(*) from samples group by task")')
    con = open_manifest(out)
    try:
        cursor = con.execute(sql)
        if cursor is None:  # only comments or semicolons: DuckDB runs nothing
            raise ManifestError(f"no SQL statement in {sql.strip()[:60]!r}")
        if cursor.description is None:
            return [], []
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()
    except duckdb.Error as exc:
        raise ManifestError(_first_line(exc)) from None
    finally:
        con.close()


TASK_STATS_SQL = """
SELECT task, count(*) AS samples,
       avg(n_turns) AS turns, max(n_turns) AS max_turns, avg(n_spoken_turns) AS spoken_turns,
       min(n_sound_tokens) AS tokens_min, quantile_cont(n_sound_tokens, 0.5) AS tokens_p50,
       quantile_cont(n_sound_tokens, 0.9) AS tokens_p90, max(n_sound_tokens) AS tokens_max,
       max(max_turn_sound_tokens) AS turn_tokens_max,
       quantile_cont(duration_s, 0.5) AS seconds_p50, max(duration_s) AS seconds_max
FROM samples GROUP BY task ORDER BY task
"""
"""Per task: samples, turns per conversation, sound tokens per sample (all spoken turns), the longest
spoken turn, seconds of audio."""


def task_stats(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """:data:`TASK_STATS_SQL` as one dict per task."""
    cursor = con.execute(TASK_STATS_SQL)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def turn_counts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int]]:
    """(task, turns in the conversation, samples) for every combination present."""
    return con.execute(
        "SELECT task, n_turns, count(*) FROM samples GROUP BY task, n_turns ORDER BY task, n_turns"
    ).fetchall()
