"""A human summary of a build, read entirely from its manifest."""

from __future__ import annotations

from pathlib import Path

from dataengine.augment.report import augment_stats, format_stats
from dataengine.manifest import open_manifest, task_stats, turn_counts
from dataengine.speaker.diversity import summary_lines, voice_diversity


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
            "voices": "SELECT coalesce(voice, '(no sound)'), count(*) FROM samples "
            "GROUP BY voice ORDER BY voice",
            "shards": "SELECT shard, count(*) FROM samples GROUP BY shard ORDER BY shard",
            "reject reasons": "SELECT stage || '/' || reason AS r, count(*) AS n FROM rejects "
            "GROUP BY r ORDER BY n DESC, r",
        }
        for title, sql in sections.items():
            rows = con.execute(sql).fetchall()
            lines.append(f"{title}:")
            lines += [f"  {name:<40} {n}" for name, n in rows] or ["  (none)"]
        lines.append("per task: samples, turns, sound tokens per sample (p50/p90/max), seconds")
        for row in task_stats(con):
            lines.append(
                f"  {row['task']:<14} {row['samples']:>6}  "
                f"turns {row['turns']:.1f} (max {row['max_turns']})  "
                f"tokens {row['tokens_p50']:g}/{row['tokens_p90']:g}/{row['tokens_max']:g}  "
                f"longest turn {row['turn_tokens_max']}  seconds p50 {row['seconds_p50']:.2f} "
                f"max {row['seconds_max']:.2f}"
            )
        lines.append("turns per conversation:")
        lines += [f"  {task:<14} {turns} turns: {n}" for task, turns, n in turn_counts(con)] or ["  (none)"]
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
        diversity = voice_diversity(out)
        if diversity is not None:
            lines += summary_lines(diversity)
        augmented = augment_stats(con)
        if augmented is not None:
            lines += format_stats(augmented)
        return "\n".join(lines)
    finally:
        con.close()
