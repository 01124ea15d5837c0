"""How fast ``dataengine serve``'s queries answer on a million-row manifest.

Makes a synthetic build folder by repeating a real build's manifest rows (ids made unique, metrics
jittered) up to ``--rows`` kept and a tenth as many rejects, then times the queries each page runs.

    python benchmarks/bench_serve.py BUILD [--rows 1000000] [--work /tmp/serve-bench]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

import duckdb

from dataengine.serve.catalog import Catalog, Filters


def synthesize(build: Path, work: Path, rows: int) -> Path:
    out = work / "million"
    shutil.rmtree(out, ignore_errors=True)
    (out / "manifest").mkdir(parents=True)
    for name in ("recipe.yaml", "build.json"):
        shutil.copy(build / name, out / name)
    con = duckdb.connect()
    for table, n in (("samples", rows), ("rejects", rows // 10)):
        src = build / "manifest" / f"{table}.parquet"
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{src}'").fetchall()]
        types = dict(
            con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{src}')").fetchall()
        )
        exprs = []
        for c in columns:
            if c == "id":
                exprs.append("id || '-' || r.range::VARCHAR AS id")
            elif c == "key":
                exprs.append("key || '-' || r.range::VARCHAR AS key")
            elif c == "index":
                exprs.append('(r.range * 1000 + "index")::BIGINT AS "index"')
            elif c == "shard" and table == "samples":
                exprs.append("'train-' || lpad((r.range // 10)::VARCHAR, 6, '0') || '.tar' AS shard")
            elif types[c] == "DOUBLE":
                exprs.append(f'"{c}" * (0.9 + 0.2 * random()) AS "{c}"')
            else:
                exprs.append(f'"{c}"')
        base = con.execute(f"SELECT count(*) FROM '{src}'").fetchall()[0][0]
        repeats = -(-n // max(base, 1))
        con.execute(
            f"COPY (SELECT {', '.join(exprs)} FROM '{src}', range({repeats}) r LIMIT {n}) "
            f"TO '{out / 'manifest' / f'{table}.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
        )
    return out


def timed(label: str, fn) -> None:
    start = time.perf_counter()
    fn()
    print(f"{label:<58} {1000 * (time.perf_counter() - start):8.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/serve-bench"))
    args = parser.parse_args()
    out = synthesize(args.build, args.work, args.rows)
    start = time.perf_counter()
    catalog = Catalog(out)
    print(f"{'open (views over the Parquet files)':<58} {1000 * (time.perf_counter() - start):8.0f} ms")
    timed("overview (counts, funnel, every metric's histogram)", catalog.overview)
    timed("facets", catalog.facets)
    timed("browse: first page, index order", lambda: catalog.browse(Filters()))
    timed(
        "browse: sorted by snr_db desc, page 10000",
        lambda: catalog.browse(Filters(sort="snr_db", descending=True, page=10_000)),
    )
    timed(
        "browse: one reason, sorted by duration",
        lambda: catalog.browse(Filters(equal={"status": "rejected"}, sort="duration_s")),
    )
    timed(
        "browse: metric range + text search",
        lambda: catalog.browse(Filters(ranges=[("duration_s", 1.0, 2.0)], search="ai")),
    )
    timed("explorer: bounds and their ranges", catalog.bounds)
    timed(
        "explorer: move min_duration_s, with nearest samples",
        lambda: catalog.explore({"audio_filters.min_duration_s": 1.2}, "audio_filters.min_duration_s"),
    )
    timed(
        "explorer: move three bounds at once",
        lambda: catalog.explore(
            {
                "audio_filters.min_duration_s": 1.2,
                "audio_filters.max_codec_score": -3.0,
                "tokenizer.max_sound_tokens": 40,
            }
        ),
    )
    sample = catalog.browse(Filters(page=10_000))["rows"][0]["id"]
    timed("one sample's rows and judged metrics", lambda: catalog.judged(catalog.rows_for(sample)[0]))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
