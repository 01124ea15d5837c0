"""What a build kept, read straight from its manifest with DuckDB (not through dataengine's readers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb


@dataclass(frozen=True)
class ManifestFacts:
    """What a build kept, read straight from its ``samples.parquet`` with DuckDB (not through dataengine).

    Tests take counts, ids and shard names from here: which rows a build keeps depends on model outputs,
    and those may change with the CPU's instruction set, so no test may write them down as constants.
    """

    kept: int
    ids: list[str]
    """Kept sample ids in source order (the order the shards hold them)."""
    shards: list[str]
    """Shard file names, in order."""
    tasks: dict[str, int]
    """Kept samples per task."""


def manifest_facts(out: Path) -> ManifestFacts:
    """Kept count, ids, shards and task counts of the build in ``out``."""
    path = str(Path(out) / "manifest" / "samples.parquet").replace("'", "''")
    con = duckdb.connect()
    try:
        rows = con.execute(f"SELECT id, shard FROM read_parquet('{path}') ORDER BY index").fetchall()
        tasks = con.execute(f"SELECT task, count(*) FROM read_parquet('{path}') GROUP BY task").fetchall()
    finally:
        con.close()
    return ManifestFacts(
        kept=len(rows),
        ids=[sample_id for sample_id, _ in rows],
        shards=sorted({shard for _, shard in rows}),
        tasks=dict(tasks),
    )
