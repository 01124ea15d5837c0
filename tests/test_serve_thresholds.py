"""The threshold explorer decides exactly as the stages do: its SQL against the real decision code (random
metrics at and around every bound, NaN and infinities included), and its counts on real builds against
the stages' own functions and against plain DuckDB queries on the manifest."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from sample_fixtures import spoken_pair

from dataengine.audio.asr import ASRStage
from dataengine.audio.filters import AUDIO_METRIC_NAMES, AUDIO_REJECT_REASONS, AudioFilter
from dataengine.recipe import Recipe
from dataengine.registry import build_stages, metric_names
from dataengine.sample import Unit
from dataengine.serve import thresholds as th
from dataengine.serve.catalog import Catalog, Filters
from dataengine.text.filters import check_text
from dataengine.tokenizer.stage import TokenizerStage

# --- the mapping covers the recipe ----------------------------------------------------------------


def test_every_field_of_a_filter_section_is_a_bound_or_said_why_not() -> None:
    for section, model in th.SECTIONS.items():
        bounds = {b.key for b in th.BOUNDS if b.section == section}
        others = set(th.NOT_BOUNDS[section])
        assert not bounds & others, section
        assert bounds | others == set(model.model_fields), section


def test_measuring_settings_of_the_audio_filter_are_not_bounds() -> None:
    settings = AudioFilter().cache_settings()
    fields = set(th.SECTIONS["audio_filters"].model_fields)
    assert {k for k in settings if k in fields} <= set(th.NOT_BOUNDS["audio_filters"])


def test_bounds_read_metrics_the_manifest_stores() -> None:
    stored = set(metric_names()) | {"duration_s", "n_sound_tokens"}
    for b in th.BOUNDS:
        assert set(b.metrics) <= stored, b.path
    for rule in th.RULES:
        assert set(rule.metrics) <= stored, rule.stage
    audio = next(r for r in th.RULES if r.stage == "audio_filters")
    assert audio.judged == AUDIO_REJECT_REASONS
    assert set(audio.metrics) == set(AUDIO_METRIC_NAMES)


def test_stage_order_is_the_pipeline_order() -> None:
    """With its own ASR pass and with the shared Whisper pass (``whisper`` before ``asr``)."""
    seen: set[str] = set()
    for asr in ({"model": "tiny.en"}, {"model": "tiny.en", "share_encoder": True}):
        names = [s.name for s in build_stages(Recipe.model_validate({"name": "x", "asr": asr}))] + ["write"]
        assert names == [name for name in th.STAGE_ORDER if name in names]
        seen |= set(names)
    assert seen == set(th.STAGE_ORDER)


# --- the stages' own decisions, the oracle --------------------------------------------------------


def decide(stage: str, recipe: Recipe, row: dict[str, Any]) -> str | None:
    """The reject reason the stage's real code gives ``row``'s stored metrics (None: passes)."""
    if stage == "audio_filters":
        verdict = AudioFilter(recipe.audio_filters).decide(row)
        return verdict and verdict[0]
    if stage == "asr":
        verdict = ASRStage(recipe.asr).decide(row)
        return verdict and verdict[0]
    if stage == "tokenizer":
        sample = spoken_pair("x", 0, "p")
        sample.turns[0].tokens = np.zeros(int(row["n_sound_tokens"]), dtype=np.int16)
        TokenizerStage(recipe.tokenizer).judge(Unit(sample, 0))
        return sample.reject and sample.reject.reason
    if stage == "text_filters":
        verdict = check_text(row["prompt"], recipe.text_filters, recipe.tokenizer.max_sound_tokens)
        return verdict and verdict[0]
    raise AssertionError(stage)


def sql_reasons(stage: str, recipe: Recipe, rows: list[dict[str, Any]]) -> list[str | None]:
    rule = next(r for r in th.RULES if r.stage == stage)
    metrics = pa.Table.from_pylist([{"i": i, **r} for i, r in enumerate(rows)])  # noqa: F841 - read by DuckDB
    con = duckdb.connect()
    sql = f"SELECT {rule.sql(th.prefixed('o_'))} FROM metrics ORDER BY i"
    return [r[0] for r in con.execute(sql, th.used(sql, th.params(recipe, "o_"))).fetchall()]


def _near(rng: random.Random, limit: float) -> float:
    pick = rng.random()
    if pick < 0.04:
        return math.nan
    if pick < 0.06:
        return rng.choice([math.inf, -math.inf])
    if pick < 0.25:
        return float(limit)  # exactly on the bound
    scale = max(abs(limit), 1.0)
    return float(limit + rng.choice([-1, 1]) * scale * rng.choice([1e-9, 1e-3, 0.05, 0.5]))


CLEAN = {
    "duration_s": 3.0, "speech_fraction": 0.9, "speech_prob_mean": 0.9, "silence_fraction": 0.2,
    "leading_silence_s": 0.1, "trailing_silence_s": 0.1, "clipping_ratio": 0.0, "hf_energy_db": -30.0,
    "band_edge_db": 10.0, "spectral_hole_ratio": 0.001, "hf_dynamics_db": 30.0, "lf_dynamics_db": 40.0,
    "codec_score": -6.0, "codec_frames": 300.0, "snr_db": 30.0, "level_snr_db": 50.0, "asr_cer": 0.0,
    "asr_wer": 0.0,
}  # fmt: skip
"""Metrics of a clip every random recipe below keeps."""


def _random_recipe(rng: random.Random) -> Recipe:
    audio = {}
    for b in th.BOUNDS:
        if b.section == "audio_filters":
            d = b.default()
            audio[b.key] = int(d * rng.uniform(0.5, 1.5)) if b.integer else d * rng.uniform(0.7, 1.3)
    audio["max_duration_s"] = max(audio["max_duration_s"], audio["min_duration_s"] + 1)
    audio["max_silence_fraction"] = min(audio["max_silence_fraction"], 1.0)
    return Recipe.model_validate(
        {
            "name": "random",
            "audio_filters": audio,
            "asr": {"model": "tiny.en", "max_cer": rng.uniform(0.1, 0.6), "max_wer": rng.uniform(0.5, 1.5)},
            "tokenizer": {"max_sound_tokens": rng.randint(50, 600)},
            "text_filters": {"length_margin": rng.uniform(1.0, 2.0)},
        }
    )


@pytest.mark.parametrize("seed", range(6))
def test_sql_decisions_equal_the_stages_own_on_random_metrics_around_every_bound(seed: int) -> None:
    rng = random.Random(seed)
    recipe = _random_recipe(rng)
    limits: dict[str, list[float]] = {}
    for b in th.BOUNDS:
        for metric in b.metrics:
            limits.setdefault(metric, []).append(Catalog._bound_limit(b, recipe))
    rows = []
    for _ in range(600):  # a clean clip with one to four metrics on or around one of their bounds
        row = dict(CLEAN)
        picked = set(rng.sample(sorted(CLEAN), rng.randint(1, 4)))
        if picked & {"snr_db", "level_snr_db"} and rng.random() < 0.7:
            picked |= {"snr_db", "level_snr_db"}  # noise needs both low
        for m in sorted(picked):
            row[m] = _near(rng, rng.choice(limits[m]))
        row["n_sound_tokens"] = float(max(0, recipe.tokenizer.max_sound_tokens + rng.randint(-2, 2)))
        rows.append(row)
    for stage in ("audio_filters", "asr", "tokenizer"):
        expected = [decide(stage, recipe, row) for row in rows]
        assert sql_reasons(stage, recipe, rows) == expected, stage
        assert len(set(expected)) > 1, stage  # the rows reach both sides of the bounds
    audio = [decide("audio_filters", recipe, row) for row in rows]
    assert set(AUDIO_REJECT_REASONS) <= set(audio)  # every audio check fired somewhere


def test_sql_text_estimate_check_equals_check_text() -> None:
    rng = random.Random(3)
    recipe = _random_recipe(rng)
    from dataengine.text.filters import estimated_sound_tokens

    rows = []
    for n in range(1, 400, 7):
        prompt = ("word " * n)[: n * 3].strip() or "hi there"
        rows.append({"prompt": prompt, "est_sound_tokens": float(estimated_sound_tokens(prompt, 14.0))})
    for scale in (0.2, 0.5, 1.0):
        cut = recipe.with_overrides(tokenizer={"max_sound_tokens": max(1, int(200 * scale))})
        expected = [decide("text_filters", cut, row) for row in rows]
        assert sql_reasons("text_filters", cut, rows) == expected
        assert {None, "too_long_estimate"} == set(expected)


# --- counts on real builds ------------------------------------------------------------------------


def oracle(catalog: Catalog, changes: dict[str, float]) -> dict[str, int]:
    """The explorer's totals recomputed row by row with the stages' own decision code."""
    old, new = catalog.recipe, th.with_changes(catalog.recipe, changes)
    stages = [r.stage for r in catalog.rules]
    judged = {r.stage: r.judged for r in catalog.rules}
    metrics = {r.stage: r.metrics for r in catalog.rules}
    cur = catalog.cursor()
    cur.execute("SELECT * FROM items")
    names = [d[0] for d in cur.description]
    totals = dict.fromkeys(("dropped", "added", "may_add", "borderline"), 0)
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))

        def reached(stage: str, row: dict[str, Any] = row) -> bool:
            if any(row[m] is None for m in metrics[stage]):
                return False
            if row["status"] == "kept":
                return True
            at = th.STAGE_ORDER.index(row["stage"])
            here = th.STAGE_ORDER.index(stage)
            return at > here or (at == here and row["reason"] in judged[stage])

        old_v = {s: decide(s, old, row) for s in stages if reached(s)}
        new_v = {s: decide(s, new, row) for s in stages if reached(s)}
        if row["status"] == "kept":
            if any(old_v.values()):
                totals["borderline"] += 1
            elif any(new_v.values()):
                totals["dropped"] += 1
        elif row["stage"] in stages and reached(row["stage"]):
            at = row["stage"]
            if old_v[at] is None:
                totals["borderline"] += 1
            elif all(new_v[s] is None for s in stages[: stages.index(at) + 1]):
                totals["added" if at == "tokenizer" else "may_add"] += 1
    return totals


def _moves(catalog: Catalog) -> list[dict[str, float]]:
    """Each bound moved to the 20th, 50th and 80th percentile of what it judges, one at a time, and some
    together."""
    moves = []
    cur = catalog.cursor()
    for b in catalog.bounds():
        bound = th.BY_PATH[b["path"]]
        factor = 1.0
        if bound.factor:
            factor = float(Catalog._bound_limit(bound, catalog.recipe) / b["value"])
        qs = cur.execute(
            f"SELECT quantile_disc(s, [0.2, 0.5, 0.8]) FROM (SELECT {bound.statistic} AS s FROM items "
            f"WHERE {catalog._population(bound.stage)}) WHERE isfinite(s::DOUBLE)"
        ).fetchall()[0][0]
        for value in qs or []:
            value = value / factor
            moves.append({b["path"]: math.ceil(value) if b["integer"] else value})
    moves.append({"audio_filters.min_duration_s": 0.1, "tokenizer.max_sound_tokens": 30})
    moves.append({"audio_filters.max_codec_score": -3.0, "audio_filters.min_hf_energy_db": -30.0})
    return moves


@pytest.mark.parametrize("build_dir", ["small_build_dir", "rejecting_build_dir"])
def test_explorer_counts_equal_the_stages_own_decisions(
    build_dir: str, request: pytest.FixtureRequest
) -> None:
    catalog = Catalog(request.getfixturevalue(build_dir))
    assert catalog.explore({})["totals"] == dict.fromkeys(("dropped", "added", "may_add", "borderline"), 0)
    changed = 0
    for changes in _moves(catalog):
        result = catalog.explore(changes)
        if "error" in result:  # e.g. min_duration_s above max_duration_s: the recipe's own check
            continue
        assert result["totals"] == oracle(catalog, changes), changes
        changed += sum(result["totals"].values()) > 0
    assert changed >= 5  # the moves do change something


def test_explorer_counts_equal_plain_duckdb_queries(rejecting_build_dir: Path) -> None:
    catalog = Catalog(rejecting_build_dir)
    con = duckdb.connect()
    samples = str(rejecting_build_dir / "manifest" / "samples.parquet")
    rejects = str(rejecting_build_dir / "manifest" / "rejects.parquet")
    build_min = catalog.recipe.audio_filters.min_duration_s
    durations = [r[0] for r in con.execute(f"SELECT duration_s FROM '{samples}' ORDER BY 1").fetchall()]
    stricter = durations[len(durations) // 2]
    dropped = con.execute(f"SELECT count(*) FROM '{samples}' WHERE duration_s < ?", [stricter]).fetchall()[0][
        0
    ]
    result = catalog.explore({"audio_filters.min_duration_s": stricter})
    assert result["totals"]["dropped"] == dropped > 0
    assert {r["task"]: r["dropped"] for r in result["by_task"]} == dict(
        con.execute(
            f"SELECT task, count(*) FROM '{samples}' WHERE duration_s < ? GROUP BY task", [stricter]
        ).fetchall()
    )
    # looser: the too_short rejects at or above the new bound pass (the later stages never saw them)
    looser = build_min / 2
    back = con.execute(
        f"SELECT count(*) FROM '{rejects}' WHERE reason = 'too_short' AND duration_s >= ?", [looser]
    ).fetchall()[0][0]
    assert back > 0
    assert catalog.explore({"audio_filters.min_duration_s": looser})["totals"]["may_add"] == back
    # fewer sound tokens allowed: the tokenizer's and the text filter's estimate check both tighten
    cut = int(np.median([r[0] for r in con.execute(f"SELECT n_sound_tokens FROM '{samples}'").fetchall()]))
    margin = catalog.recipe.text_filters.length_margin
    over = con.execute(
        f"SELECT count(*) FROM '{samples}' WHERE n_sound_tokens > ? OR est_sound_tokens > ? * ?",
        [cut, cut, margin],
    ).fetchall()[0][0]
    assert catalog.explore({"tokenizer.max_sound_tokens": cut})["totals"]["dropped"] == over > 0


def test_an_impossible_recipe_is_an_answer_not_a_crash(rejecting_build_dir: Path) -> None:
    catalog = Catalog(rejecting_build_dir)
    result = catalog.explore({"audio_filters.min_duration_s": 99.0})
    assert "min_duration_s must be below max_duration_s" in result["error"]
    result = catalog.explore({"audio_filters.min_speech_fraction": 2.0})
    assert result["error"].startswith("audio_filters.min_speech_fraction")


def test_copy_as_recipe_rebuilds_with_the_moved_bound(rejecting_build_dir: Path, tmp_path: Path) -> None:
    from dataengine.recipe import load_recipe

    catalog = Catalog(rejecting_build_dir)
    text = catalog.explore({"audio_filters.min_duration_s": 0.25, "tokenizer.max_sound_tokens": 321})["yaml"]
    (tmp_path / "r.yaml").write_text(text)
    recipe = load_recipe(tmp_path / "r.yaml")
    assert recipe.audio_filters.min_duration_s == 0.25 and recipe.tokenizer.max_sound_tokens == 321
    assert (
        recipe.model_dump()
        == th.with_changes(
            catalog.recipe, {"audio_filters.min_duration_s": 0.25, "tokenizer.max_sound_tokens": 321}
        ).model_dump()
    )


def test_a_kept_sample_whose_rounded_metric_fails_its_bound_is_borderline(
    rejecting_build_dir: Path, tmp_path: Path
) -> None:
    """The manifest rounds metrics to 4 decimals: a kept clip that measured just above a bound can read as
    below it. The explorer counts it apart and never as a change (it used to crash on such a row)."""
    import shutil

    out = tmp_path / "build"
    shutil.copytree(rejecting_build_dir, out)
    samples = out / "manifest" / "samples.parquet"
    con = duckdb.connect()
    first = con.execute(f"SELECT min(index) FROM '{samples}'").fetchall()[0][0]
    limit = Catalog(out).recipe.audio_filters.min_duration_s
    con.execute(
        f"COPY (SELECT * REPLACE "
        f"(CASE WHEN index = {first} THEN {limit} - 0.0001 ELSE duration_s END AS duration_s) "
        f"FROM '{samples}') TO '{tmp_path / 's.parquet'}' (FORMAT parquet)"
    )
    shutil.move(tmp_path / "s.parquet", samples)
    catalog = Catalog(out)
    longest = con.execute(f"SELECT max(duration_s) FROM '{samples}'").fetchall()[0][0]
    changes = {"audio_filters.max_duration_s": longest - 0.001}  # drops the longest clip
    result = catalog.explore(changes)
    assert result["totals"] == oracle(catalog, changes)
    longest_n = con.execute(
        f"SELECT count(*) FROM '{samples}' WHERE duration_s > ?", [longest - 0.001]
    ).fetchall()
    assert result["totals"]["borderline"] == 1 and result["totals"]["dropped"] == longest_n[0][0] >= 1
    assert {r["reason"] for r in result["by_reason"]} == {"", "audio_filters/too_long"}


def test_a_build_from_before_rejected_audio_was_kept_opens(rejecting_build_dir: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "old"
    shutil.copytree(rejecting_build_dir, out)
    rejects = out / "manifest" / "rejects.parquet"
    duckdb.execute(
        f"COPY (SELECT * EXCLUDE (shard, n_sound_tokens) FROM '{rejects}') "
        f"TO '{tmp_path / 'r.parquet'}' (FORMAT parquet)"
    )
    shutil.move(tmp_path / "r.parquet", rejects)
    shutil.rmtree(out / "rejected")
    catalog = Catalog(out)
    assert catalog.overview()["rejected"] > 0 and catalog.overview()["rejected_with_audio"] == 0
    rejected = catalog.browse(Filters(equal={"status": "rejected"}))["rows"][0]["id"]
    assert catalog.audio_location("rejected", rejected) is None
    assert "error" not in catalog.explore({"audio_filters.min_duration_s": 0.1})


def test_a_folder_that_is_not_a_build_is_one_line(tmp_path: Path) -> None:
    from dataengine.manifest import ManifestError

    with pytest.raises(ManifestError, match="not a dataengine build"):
        Catalog(tmp_path)
    (tmp_path / "manifest").mkdir()
    for name in ("samples.parquet", "rejects.parquet"):
        (tmp_path / "manifest" / name).write_bytes(b"not parquet")
    (tmp_path / "build.json").write_text("{}")
    (tmp_path / "recipe.yaml").write_text("name: x\n")
    with pytest.raises(ManifestError, match="unreadable manifest"):
        Catalog(tmp_path)
