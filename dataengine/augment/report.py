"""What a build's augmentation did, read from its manifest: conditions applied, their parameters, and
the token-stability table (``inspect``, the card and ``benchmarks/bench_augment.py`` all use this)."""

from __future__ import annotations

from typing import Any

from dataengine.augment.stability import snr_bucket_sql
from dataengine.recipe import AUGMENT_CONDITIONS

PARAMETERS: tuple[tuple[str, str], ...] = (
    ("aug_snr_db", "noise SNR, dB"),
    ("aug_rt60_s", "room RT60, s"),
    ("aug_room_m3", "room volume, m^3"),
    ("aug_level_dbfs", "speech level, dBFS RMS"),
    ("aug_floor_dbfs", "noise floor, dBFS RMS"),
    ("aug_rumble_db", "rumble re speech, dB"),
    ("aug_codec_kbps", "codec bitrate, kbps"),
)
"""The parameter columns and what they are."""


def _columns(con: Any, table: str) -> set[str]:
    return {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}


def augment_stats(con: Any) -> dict[str, Any] | None:
    """None for a build without augmentation; else counts (kept and rejected, by conditions), parameter
    ranges, and per condition and SNR bucket the normalised token edit distance (kept samples' first
    spoken turn, clean vs augmented tokens after collapsing repeats)."""
    if "conditions" not in _columns(con, "samples"):
        return None
    rows = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    kept = rows(
        "SELECT conditions, count(*) FROM samples WHERE conditions IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1"
    )
    rejected = rows(
        "SELECT conditions, stage || '/' || reason, count(*) FROM rejects WHERE conditions IS NOT NULL "
        "GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
    )
    speech = "origin IN ('tts', 'recording')"
    clean = rows(f"SELECT count(*) FROM samples WHERE conditions IS NULL AND {speech}")[0][0]
    parameters = []
    for column, label in PARAMETERS:
        n, low, p50, high = rows(
            f"SELECT count({column}), min({column}), median({column}), max({column}) FROM samples"
        )[0]
        if n:
            parameters.append({"column": column, "label": label, "n": n, "min": low, "p50": p50, "max": high})
    codecs = rows("SELECT aug_codec, count(*) FROM samples WHERE aug_codec IS NOT NULL GROUP BY 1 ORDER BY 1")
    backgrounds = rows(
        "SELECT split_part(aug_noise_clip, '/', 1), count(*), count(DISTINCT aug_noise_clip) FROM samples "
        "WHERE aug_noise_clip IS NOT NULL GROUP BY 1 ORDER BY 1"
    )
    return {
        "kept": kept,
        "rejected": rejected,
        "clean": clean,
        "parameters": parameters,
        "codecs": codecs,
        "backgrounds": backgrounds,
        "stability": stability_table(con),
    }


def stability_table(con: Any) -> list[dict[str, Any]]:
    """Per condition (a turn with several counts under each) and SNR bucket: turns, mean, median and
    90th percentile of ``token_ned``; ``all`` first."""
    bucket = snr_bucket_sql()
    selects = ["SELECT 'all' AS condition, * FROM measured"] + [
        f"SELECT '{name}', * FROM measured WHERE list_contains(string_split(conditions, '+'), '{name}')"
        for name in AUGMENT_CONDITIONS
    ]
    sql = (
        f"WITH measured AS (SELECT {bucket} AS bucket, token_ned, conditions FROM samples "
        "WHERE token_ned IS NOT NULL), "
        f"tagged AS ({' UNION ALL '.join(selects)}) "
        "SELECT condition, bucket, count(*), avg(token_ned), median(token_ned), "
        "quantile_cont(token_ned, 0.9) "
        "FROM tagged GROUP BY condition, bucket"
    )
    order = {name: i for i, name in enumerate(("all", *AUGMENT_CONDITIONS))}
    buckets = {"no noise": 0, "<10 dB": 1, "10-20 dB": 2, ">=20 dB": 3}
    result = [
        {"condition": c, "bucket": b, "n": n, "mean": mean, "p50": p50, "p90": p90}
        for c, b, n, mean, p50, p90 in con.execute(sql).fetchall()
    ]
    return sorted(result, key=lambda r: (order[r["condition"]], buckets[r["bucket"]]))


def format_stats(stats: dict[str, Any]) -> list[str]:
    """``augment_stats`` as text lines (``inspect``, the bench script)."""
    lines = [
        f"augmentation: {sum(n for _, n in stats['kept'])} kept augmented, {stats['clean']} kept clean speech"
    ]
    lines += [f"  {conditions:<40} {n}" for conditions, n in stats["kept"]]
    if stats["rejected"]:
        lines.append("augmented and rejected:")
        lines += [f"  {conditions:<30} {reason:<28} {n}" for conditions, reason, n in stats["rejected"]]
    if stats["parameters"]:
        lines.append("augment parameters (kept): n  min  p50  max")
        lines += [
            f"  {p['label']:<26} {p['n']:>5}  {p['min']:.2f}  {p['p50']:.2f}  {p['max']:.2f}"
            for p in stats["parameters"]
        ]
    if stats["codecs"]:
        lines.append("codecs: " + ", ".join(f"{name} {n}" for name, n in stats["codecs"]))
    if stats["backgrounds"]:
        lines.append(
            "backgrounds: "
            + ", ".join(f"{kind} {n} ({files} files)" for kind, n, files in stats["backgrounds"])
        )
    lines.append(
        "token stability (normalised edit distance, repeats collapsed): condition, SNR, turns, mean/p50/p90"
    )
    lines += [
        f"  {r['condition']:<6} {r['bucket']:<9} {r['n']:>5}  "
        f"{r['mean']:.3f} / {r['p50']:.3f} / {r['p90']:.3f}"
        for r in stats["stability"]
    ] or ["  (none measured)"]
    return lines
