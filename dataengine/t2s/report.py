"""What a T2S build says about its T2S turns, for ``build.json`` and the card: the stages they skipped
(those that need audio), the checks that stand in for them, and the distribution of every T2S figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from dataengine.recipe import Recipe
from dataengine.sample import T2S, TTS

QUANTILES = (10, 50, 90)


def distribution(values: list[float]) -> dict[str, float | int]:
    """Count, min, p10/p50/p90, max and mean, rounded (an empty list: count 0 only)."""
    if not values:
        return {"n": 0}
    array = np.asarray(values, dtype=np.float64)
    figures: dict[str, float | int] = {"n": int(array.size), "min": float(array.min())}
    figures |= {f"p{q}": float(np.percentile(array, q)) for q in QUANTILES}
    figures |= {"max": float(array.max()), "mean": float(array.mean())}
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def skipped_stages(recipe: Recipe) -> list[str]:
    """The recipe's stages that work on spoken TTS turns but not on T2S turns (they need audio)."""
    from dataengine.registry import stage_classes

    return [
        cls.name
        for cls in stage_classes()
        if TTS in cls.origins and T2S not in cls.origins and cls.from_recipe(recipe) is not None
    ]


def t2s_rows(manifest: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The T2S rows of a written manifest (kept, rejected), with the columns :func:`t2s_report` reads:
    the build does not keep its rows in memory."""
    from dataengine.t2s.guard import DriftGuardStage
    from dataengine.t2s.stage import T2SStage
    from dataengine.writers.manifest import REJECTS_FILE, SAMPLES_FILE

    wanted = {"origin", "stage", "reason", *T2SStage.metrics, *DriftGuardStage.metrics}
    tables = []
    for name in (SAMPLES_FILE, REJECTS_FILE):
        path = manifest / name
        columns = [c for c in pq.read_schema(path).names if c in wanted]
        tables.append(pq.read_table(path, columns=columns, filters=[("origin", "=", T2S)]).to_pylist())
    return tables[0], tables[1]


def t2s_report(
    recipe: Recipe, samples: list[dict[str, Any]], rejects: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ``t2s`` entry of ``build.json`` (from the manifest rows: the first spoken turn's metrics)."""
    from dataengine.t2s.guard import DriftGuardStage
    from dataengine.t2s.stage import T2SStage

    assert recipe.t2s is not None
    rows = [r for r in (*samples, *rejects) if r.get("origin") == T2S]
    reasons: dict[str, int] = {}
    for row in rejects:
        if row.get("origin") == T2S:
            key = f"{row['stage']}/{row['reason']}"
            reasons[key] = reasons.get(key, 0) + 1
    figures = {
        metric: distribution([r[metric] for r in rows if r.get(metric) is not None])
        for metric in (*T2SStage.metrics, *DriftGuardStage.metrics)
    }
    return {
        "model": recipe.t2s.model,
        "tokenizer": recipe.tokenizer.checkpoint,
        "sampling": "greedy"
        if recipe.t2s.temperature == 0
        else f"T={recipe.t2s.temperature:g}, top_k={recipe.t2s.top_k}, seeded per turn",
        "guard_fraction": recipe.t2s.guard.fraction,
        "guard_voice": recipe.t2s.guard.voice.name,
        "kept": sum(1 for r in samples if r.get("origin") == T2S),
        "rejected": dict(sorted(reasons.items())),
        "skipped_stages": skipped_stages(recipe),
        "checks_instead": [*T2SStage.reject_reasons, *DriftGuardStage.reject_reasons],
        "figures": figures,
    }
