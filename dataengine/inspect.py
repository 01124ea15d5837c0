"""A human summary of a build, read entirely from its manifest."""

from __future__ import annotations

from pathlib import Path

from dataengine.manifest import open_manifest


def summarize(out: Path) -> str:
    con = open_manifest(out)
    try:
        kept, hours = con.execute(
            "SELECT count(*), coalesce(sum(duration_s), 0) / 3600 FROM samples"
        ).fetchall()[0]
        rejected = con.execute("SELECT count(*) FROM rejects").fetchall()[0][0]
        lines = [
            f"build: {out}",
            f"samples: {kept} kept, {rejected} rejected ({kept / max(1, kept + rejected):.1%} kept)",
            f"audio: {hours:.3f} h",
        ]
        sections = {
            "tasks": "SELECT task, count(*) FROM samples GROUP BY task ORDER BY task",
            "voices": "SELECT voice, count(*) FROM samples GROUP BY voice ORDER BY voice",
            "shards": "SELECT shard, count(*) FROM samples GROUP BY shard ORDER BY shard",
            "reject reasons": "SELECT stage || '/' || reason AS r, count(*) AS n FROM rejects "
            "GROUP BY r ORDER BY n DESC, r",
        }
        for title, sql in sections.items():
            rows = con.execute(sql).fetchall()
            lines.append(f"{title}:")
            lines += [f"  {name:<40} {n}" for name, n in rows] or ["  (none)"]
        for column, unit in (("n_sound_tokens", "tokens"), ("duration_s", "s")):
            row = con.execute(
                f"SELECT min({column}), quantile_cont({column}, [0.5, 0.9, 0.99]), max({column}) FROM samples"
            ).fetchall()[0]
            if row[0] is None:
                continue
            p50, p90, p99 = row[1]
            lines.append(
                f"{column} ({unit}): min {row[0]:g}  p50 {p50:g}  p90 {p90:g}  p99 {p99:g}  max {row[2]:g}"
            )
        return "\n".join(lines)
    finally:
        con.close()
