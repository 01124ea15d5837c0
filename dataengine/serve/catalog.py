"""The manifest of one build as DuckDB views, and every query the web app runs over it.

Views over the Parquet files (nothing is copied into memory, so a million-row build opens at once); the
connection may read only those two files. Queries take values as parameters; column names come only from
the manifest's own list (:attr:`Catalog.columns`), double-quoted.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import yaml
from pydantic import ValidationError

from dataengine.manifest import COMPLETE_MARK, ManifestError, require_build
from dataengine.recipe import Recipe
from dataengine.serve import thresholds as th
from dataengine.writers.manifest import REJECT_COLUMNS, REJECTS_FILE, SAMPLE_COLUMNS, SAMPLES_FILE

PAGE_SIZES = (25, 50, 100, 200)
HIST_BINS = 30
NEAREST = 4
"""Samples shown on each side of a threshold."""
SHARD_NAME = re.compile(r"^[A-Za-z0-9_-]+-\d{6}\.tar$")
TEXT_FILTERS = ("task", "voice", "status", "stage", "reason", "shard", "conditions")
"""Equality filters (``conditions``: the augment conditions of a turn, in builds that have them)."""
UNSORTABLE = ("prompt", "response", "detail", "sha256", "clean_tokens")
NOT_METRICS = {"index", "value", "turn", "n_turns", "n_spoken_turns"}
LIST_COLUMNS = ("status", "id", "task", "voice", "stage", "reason", "shard", "duration_s", "n_sound_tokens")


class QueryError(ValueError):
    """A request names something the build does not have (a column, a value of the wrong type)."""


def q(name: str) -> str:
    """A whitelisted column name, quoted for SQL."""
    return '"' + name.replace('"', '""') + '"'


def _finite(x: Any) -> Any:
    """JSON has no NaN or infinity: those become strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def _records(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [{n: _finite(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]


@dataclass
class Filters:
    """What the browse table shows: equality filters, metric ranges, a text search, the order, a page."""

    equal: dict[str, str] = field(default_factory=dict)
    ranges: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    search: str = ""
    sort: str = "index"
    descending: bool = False
    page: int = 0
    page_size: int = 50


class Catalog:
    """One build folder, opened read-only."""

    def __init__(self, out: Path) -> None:
        require_build(out)
        self.root = Path(out).resolve()
        files = [self.root / "manifest" / SAMPLES_FILE, self.root / "manifest" / REJECTS_FILE]
        try:
            raw = yaml.safe_load((self.root / "recipe.yaml").read_text(encoding="utf-8"))
            self.recipe = Recipe.model_validate(raw)
            self.recipe_data: dict[str, Any] = raw
            self.build_info = json.loads((self.root / COMPLETE_MARK).read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ManifestError(
                f"{out}: unreadable recipe.yaml or build.json ({type(exc).__name__})"
            ) from None
        self._db = duckdb.connect()
        try:
            described = self._views(files)
        except duckdb.Error as exc:
            self._db.close()
            raise ManifestError(f"{out}: unreadable manifest ({str(exc).strip().splitlines()[0]})") from None
        self.columns: dict[str, str] = {row[0]: row[1] for row in described}
        required = {name for name, _ in SAMPLE_COLUMNS + REJECT_COLUMNS}
        if required - set(self.columns):
            missing = sorted(required - set(self.columns))[0]
            raise ManifestError(f"{out}: not a dataengine manifest (no column {missing!r})")
        numeric = ("DOUBLE", "BIGINT", "INTEGER", "FLOAT")
        self.metrics = [c for c, t in self.columns.items() if t in numeric and c not in NOT_METRICS]
        self.rules = th.active_rules(self.recipe, set(self.columns))
        asr = self.recipe.asr
        off = {"asr", "whisper"} if asr.model == "none" else set() if asr.share_encoder else {"whisper"}
        self.stages = [s for s in th.STAGE_ORDER if s not in off]
        self._lock = threading.Lock()
        self._cached: dict[str, Any] = {}

    def _views(self, files: list[Path]) -> list[tuple]:
        """Views ``samples``, ``rejects`` and ``items`` (both, with ``status``) over the two Parquet files,
        which become the only files the connection may read; the columns of ``items``."""
        db = self._db
        paths = [str(f).replace("'", "''") for f in files]
        db.execute(f"CREATE VIEW samples AS SELECT * FROM read_parquet('{paths[0]}')")
        db.execute(f"CREATE VIEW rejects AS SELECT * FROM read_parquet('{paths[1]}')")
        if "shard" not in {r[0] for r in db.execute("DESCRIBE rejects").fetchall()}:
            # a build from before rejected audio was kept: none of its rejects can be played
            db.execute(
                "CREATE OR REPLACE VIEW rejects AS "
                f"SELECT *, NULL::VARCHAR AS shard FROM read_parquet('{paths[1]}')"
            )
        db.execute(
            "CREATE VIEW items AS SELECT *, 'kept' AS status FROM samples "
            "UNION ALL BY NAME SELECT *, 'rejected' AS status FROM rejects"
        )
        db.execute("SET allowed_paths = [" + ", ".join(f"'{p}'" for p in paths) + "]")
        db.execute("SET enable_external_access = false")
        db.execute("SET lock_configuration = true")
        return db.execute("DESCRIBE items").fetchall()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own for one request (DuckDB connections are not shared between threads)."""
        with self._lock:
            return self._db.cursor()

    def _memo(self, key: str, compute: Any) -> Any:
        if key not in self._cached:
            self._cached[key] = compute()
        return self._cached[key]

    def column(self, name: str) -> str:
        if name not in self.columns:
            raise QueryError(f"no column {name!r} in this build")
        return q(name)

    # --- overview -----------------------------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        return self._memo("overview", self._overview)

    def _overview(self) -> dict[str, Any]:
        cur = self.cursor()
        kept, kept_s = cur.execute("SELECT count(*), coalesce(sum(duration_s), 0) FROM samples").fetchall()[0]
        rejected, rej_audio, rej_s = cur.execute(
            f"SELECT count(*), count({self.column('shard')}), coalesce(sum(duration_s), 0) FROM rejects"
        ).fetchall()[0]
        by_stage = cur.execute(
            "SELECT stage, reason, count(*) AS n FROM rejects GROUP BY ALL ORDER BY stage, n DESC, reason"
        ).fetchall()
        seen = kept + rejected
        funnel = []
        for stage in self.stages:
            reasons = [{"reason": r, "n": n} for s, r, n in by_stage if s == stage]
            dropped = sum(r["n"] for r in reasons)
            funnel.append({"stage": stage, "seen": seen, "dropped": dropped, "reasons": reasons})
            seen -= dropped
        other = sorted({s for s, _, _ in by_stage} - set(self.stages))
        for stage in other:  # a stage this code does not know (a newer build): still listed
            reasons = [{"reason": r, "n": n} for s, r, n in by_stage if s == stage]
            funnel.append(
                {"stage": stage, "seen": None, "dropped": sum(r["n"] for r in reasons), "reasons": reasons}
            )
        tasks = cur.execute("SELECT task, count(*) FROM samples GROUP BY task ORDER BY task").fetchall()
        voices = cur.execute(
            "SELECT voice, count(*) FILTER (status = 'kept'), count(*) FILTER (status = 'rejected') "
            "FROM items GROUP BY voice ORDER BY voice NULLS LAST"
        ).fetchall()
        shards = cur.execute("SELECT count(DISTINCT shard) FROM samples").fetchall()[0][0]
        conditions = []
        if "conditions" in self.columns:  # a build with augmentation: kept and rejected per condition set
            conditions = cur.execute(
                "SELECT conditions, count(*) FILTER (status = 'kept'), count(*) FILTER (status = 'rejected') "
                "FROM items WHERE conditions IS NOT NULL GROUP BY conditions ORDER BY conditions"
            ).fetchall()
        return {
            "name": self.recipe.name,
            "seed": self.recipe.seed,
            "build": self.build_info,
            "kept": kept,
            "rejected": rejected,
            "rejected_with_audio": rej_audio,
            "kept_hours": kept_s / 3600,
            "kept_seconds": kept_s,
            "rejected_seconds": rej_s,
            "shards": shards,
            "funnel": funnel,
            "tasks": [{"task": t, "n": n} for t, n in tasks],
            "voices": [{"voice": v, "kept": k, "rejected": r} for v, k, r in voices],
            "conditions": [{"conditions": c, "kept": k, "rejected": r} for c, k, r in conditions],
            "histograms": [self.histogram(m) for m in self.metrics],
        }

    def histogram(self, metric: str) -> dict[str, Any]:
        """Counts of kept and rejected values in equal bins between the 1st and 99th percentile (values
        outside land in the end bins), with the build's bounds on this metric."""
        col = self.column(metric)
        cur = self.cursor()
        finite = f"{col} IS NOT NULL AND isfinite({col}::DOUBLE)"
        lo, hi, n, mn, mx = cur.execute(
            f"SELECT quantile_cont({col}, 0.01), quantile_cont({col}, 0.99), count(*), "
            f"min({col}), max({col}) "
            f"FROM items WHERE {finite}"
        ).fetchall()[0]
        bounds = [
            {"path": b.path, "value": self._bound_limit(b, self.recipe), "role": b.role, "trigger": b.trigger}
            for b in th.bounds_for_metric(metric)
            if b.statistic == metric and b.stage in {r.stage for r in self.rules}
        ]
        result: dict[str, Any] = {"metric": metric, "n": n, "min": mn, "max": mx, "bounds": bounds}
        if not n:
            return result | {"lo": None, "hi": None, "kept": [], "rejected": []}
        if hi <= lo:
            lo, hi = (mn, mx) if mx > mn else (mn - 0.5, mn + 0.5)
        width = (hi - lo) / HIST_BINS
        rows = cur.execute(
            f"SELECT status, least(greatest(floor(({col} - $lo) / $w), 0), {HIST_BINS - 1})::INTEGER AS b, "
            f"count(*) FROM items WHERE {finite} GROUP BY ALL",
            {"lo": lo, "w": width},
        ).fetchall()
        counts = {"kept": [0] * HIST_BINS, "rejected": [0] * HIST_BINS}
        for status, b, count in rows:
            counts[status][b] = count
        return result | {"lo": lo, "hi": hi, **counts}

    # --- browse -------------------------------------------------------------------------------------

    def facets(self) -> dict[str, Any]:
        def values(column: str) -> list[Any]:
            if column not in self.columns:
                return []
            col = q(column)
            rows = (
                self.cursor()
                .execute(f"SELECT DISTINCT {col} FROM items WHERE {col} IS NOT NULL ORDER BY {col}")
                .fetchall()
            )
            return [r[0] for r in rows]

        return self._memo(
            "facets",
            lambda: {
                **{c: values(c) for c in TEXT_FILTERS},
                "metrics": self.metrics,
                "sortable": [c for c in self.columns if c not in UNSORTABLE],
                "page_sizes": list(PAGE_SIZES),
            },
        )

    def _where(self, f: Filters) -> tuple[str, dict[str, Any]]:
        conds, args = ["TRUE"], {}
        for i, (name, value) in enumerate(sorted(f.equal.items())):
            if name not in TEXT_FILTERS:
                raise QueryError(f"cannot filter on {name!r}")
            conds.append(f"{self.column(name)} = $eq{i}")
            args[f"eq{i}"] = value
        for i, (name, lo, hi) in enumerate(f.ranges):
            if name not in self.metrics:
                raise QueryError(f"no metric {name!r} in this build")
            if lo is not None:
                conds.append(f"{q(name)} >= $lo{i}")
                args[f"lo{i}"] = lo
            if hi is not None:
                conds.append(f"{q(name)} <= $hi{i}")
                args[f"hi{i}"] = hi
        if f.search:
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", f.search) + "%"
            conds.append("(id ILIKE $search ESCAPE '\\' OR prompt ILIKE $search ESCAPE '\\')")
            args["search"] = pattern
        return " AND ".join(conds), args

    def browse(self, f: Filters) -> dict[str, Any]:
        if f.page_size not in PAGE_SIZES:
            raise QueryError(f"page size must be one of {PAGE_SIZES}")
        if f.page < 0:
            raise QueryError("page must be 0 or more")
        where, args = self._where(f)
        order = f'{self.column(f.sort)} {"DESC" if f.descending else "ASC"} NULLS LAST, "index", id, status'
        shown = [c for c in LIST_COLUMNS if c in self.columns]
        extra = [m for m, _, _ in f.ranges if m not in shown] + ([f.sort] if f.sort not in shown else [])
        columns = shown + list(dict.fromkeys(extra)) + ["prompt"]
        cur = self.cursor()
        total = cur.execute(f"SELECT count(*) FROM items WHERE {where}", args).fetchall()[0][0]
        cur.execute(
            f"SELECT {', '.join(q(c) for c in columns)} FROM items WHERE {where} ORDER BY {order} "
            "LIMIT $limit OFFSET $offset",
            args | {"limit": f.page_size, "offset": f.page * f.page_size},
        )
        return {
            "total": total,
            "page": f.page,
            "page_size": f.page_size,
            "columns": columns,
            "rows": _records(cur),
        }

    # --- one sample ---------------------------------------------------------------------------------

    def rows_for(self, sample_id: str) -> list[dict[str, Any]]:
        """Every manifest row with this id (kept first; a duplicate id may also be rejected)."""
        cur = self.cursor()
        cur.execute('SELECT * FROM items WHERE id = $id ORDER BY status, "index"', {"id": sample_id})
        return _records(cur)

    def audio_location(self, status: str, sample_id: str) -> tuple[Path, str] | None:
        """(shard file, member key) holding the FLAC of ``sample_id``, or None when none was kept."""
        if status not in ("kept", "rejected"):
            return None
        table, folder = ("samples", "shards") if status == "kept" else ("rejects", "rejected")
        key = "key" if status == "kept" else "id"
        rows = (
            self.cursor()
            .execute(
                f"SELECT shard, {key} FROM {table} WHERE id = $id AND shard IS NOT NULL "
                'ORDER BY "index" LIMIT 1',
                {"id": sample_id},
            )
            .fetchall()
        )
        if not rows or not SHARD_NAME.fullmatch(rows[0][0] or ""):
            return None
        path = (self.root / folder / rows[0][0]).resolve()
        if path.parent != (self.root / folder).resolve() or not path.is_file():
            return None
        return path, rows[0][1]

    def judged(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """Each stored metric of ``row`` with the recipe bounds it was judged by and whether each fired."""
        out = []
        for metric in self.metrics:
            value = row.get(metric)
            if value is None:
                continue
            bounds = []
            for b in th.bounds_for_metric(metric):
                limit = self._bound_limit(b, self.recipe)
                x = _stat_value(b, row)
                applies = True
                if b.applies_if is not None:
                    metric_, op, other = b.applies_if
                    y = row.get(metric_)
                    applies = (
                        y is not None
                        and not isinstance(y, str)
                        and _fires(op, y, self._bound_limit(th.BY_PATH[other], self.recipe))
                    )
                bounds.append(
                    {
                        "path": b.path,
                        "limit": limit,
                        "trigger": b.trigger,
                        "role": b.role,
                        "note": b.note,
                        "applies": applies,
                        "fires": None if x is None else applies and _fires(b.trigger, x, limit),
                    }
                )
            out.append({"metric": metric, "value": value, "bounds": bounds})
        return out

    # --- the threshold explorer ---------------------------------------------------------------------

    @staticmethod
    def _bound_limit(b: th.Bound, recipe: Recipe) -> float:
        """What the statistic is compared with: the bound's value (times its factor's, if any)."""
        value = getattr(getattr(recipe, b.section), b.key)
        if b.factor:
            section, key = b.factor.split(".")
            value = value * getattr(getattr(recipe, section), key)
        return value

    def bounds(self) -> list[dict[str, Any]]:
        return self._memo("bounds", self._bounds)

    def _bounds(self) -> list[dict[str, Any]]:
        stages = {r.stage for r in self.rules}
        out = []
        cur = self.cursor()
        for b in th.BOUNDS:
            if b.stage not in stages:
                continue
            value = getattr(getattr(self.recipe, b.section), b.key)
            factor = 1.0
            if b.factor:
                section, key = b.factor.split(".")
                factor = float(getattr(getattr(self.recipe, section), key))
            lo, hi = cur.execute(
                f"SELECT min(s), max(s) FROM (SELECT {b.statistic} AS s FROM items "
                f"WHERE {self._population(b.stage)}) "
                "WHERE isfinite(s::DOUBLE)"
            ).fetchall()[0]
            lo = value if lo is None else min(value, lo / factor)
            hi = value if hi is None else max(value, hi / factor)
            out.append(
                {
                    "path": b.path,
                    "section": b.section,
                    "key": b.key,
                    "stage": b.stage,
                    "statistic": b.statistic,
                    "metrics": list(b.metrics),
                    "trigger": b.trigger,
                    "role": b.role,
                    "note": b.note,
                    "integer": b.integer,
                    "value": value,
                    "default": b.default(),
                    "range": [lo, hi],
                }
            )
        return out

    def _population(self, stage: str) -> str:
        """SQL: the rows whose ``stage`` metrics were measured and whose verdict there the bounds decide."""
        rule = next(r for r in self.rules if r.stage == stage)
        later = [s for s in th.STAGE_ORDER[th.STAGE_ORDER.index(stage) + 1 :]]
        judged = ", ".join(f"'{r}'" for r in rule.judged)
        later_sql = ", ".join(f"'{s}'" for s in later)
        measured = " AND ".join(f"{q(m)} IS NOT NULL" for m in rule.metrics)
        return (
            f"(status = 'kept' OR stage IN ({later_sql}) OR (stage = '{stage}' AND reason IN ({judged}))) "
            f"AND {measured}"
        )

    def explore(self, changes: dict[str, float], focus: str | None = None) -> dict[str, Any]:
        """What the build would keep with ``changes`` to its bounds, from the stored metrics alone.

        ``dropped``: kept samples that a changed bound now rejects. ``added``: samples rejected by the
        tokenizer that would now be kept (nothing runs after it). ``may_add``: samples rejected at an
        earlier stage that would now pass it, but the later stages never measured them, so a rebuild
        decides. A sample whose stored (rounded) metrics do not reproduce its own verdict under the
        build's recipe is counted as ``borderline`` and never as a change.
        """
        unknown = sorted(set(changes) - {b["path"] for b in self.bounds()})
        if unknown:
            raise QueryError(f"no explorable bound {unknown[0]!r} in this build")
        for path, value in changes.items():
            if not math.isfinite(value):
                raise QueryError(f"{path}: not a finite number")
        try:
            new = th.with_changes(self.recipe, changes)
        except ValidationError as exc:
            first = exc.errors()[0]
            return {"error": f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"}
        args = th.params(self.recipe, "o_") | th.params(new, "n_")
        explored = self._explored()
        cur = self.cursor()
        sql = (
            f"WITH explored AS ({explored}) "
            "SELECT change, coalesce(task, '') AS task, coalesce(voice, '') AS voice, "
            "coalesce(CASE WHEN change = 'dropped' THEN new_reason ELSE stage || '/' || reason END, '') "
            "AS why, "
            "count(*) "
            "FROM explored WHERE change IS NOT NULL GROUP BY ALL"
        )
        rows = cur.execute(sql, th.used(sql, args)).fetchall()
        totals = {"dropped": 0, "added": 0, "may_add": 0, "borderline": 0}
        by_task: dict[str, dict[str, int]] = {}
        by_voice: dict[str, dict[str, int]] = {}
        by_reason: dict[str, dict[str, int]] = {}
        for kind, task, voice, why, n in rows:
            totals[kind] += n
            for table, name in ((by_task, task), (by_voice, voice), (by_reason, why)):
                table.setdefault(name, dict.fromkeys(totals, 0))[kind] += n
        kept_after = self.overview()["kept"] - totals["dropped"] + totals["added"]
        result: dict[str, Any] = {
            "changes": {p: v for p, v in changes.items()},
            "totals": totals,
            "kept_now": self.overview()["kept"],
            "kept_after": kept_after,
            "by_task": _table(by_task, "task"),
            "by_voice": _table(by_voice, "voice"),
            "by_reason": _table(by_reason, "reason"),
            "yaml": self.recipe_yaml(changes),
        }
        if focus:
            result["nearest"] = self._nearest(cur, explored, focus, new, args)
        return result

    def _explored(self) -> str:
        """SQL: every manifest row with, per stage rule, whether the row is in its population (``in_S``),
        its verdict under the build's bounds (``old_S``, parameters ``$o_*``) and under the changed ones
        (``new_S``, ``$n_*``): a reject reason or NULL; then ``change`` and ``new_reason``."""
        stages = [r.stage for r in self.rules]
        cols = []
        for r in self.rules:
            s = r.stage
            cols += [
                f"{self._population(s)} AS in_{s}",
                f"CASE WHEN {self._population(s)} THEN {r.sql(th.prefixed('o_'))} END AS old_{s}",
                f"CASE WHEN {self._population(s)} THEN {r.sql(th.prefixed('n_'))} END AS new_{s}",
            ]
        any_old = " OR ".join(f"old_{s} IS NOT NULL" for s in stages)
        any_new = " OR ".join(f"new_{s} IS NOT NULL" for s in stages)
        new_reason = "coalesce(" + ", ".join(f"'{s}/' || new_{s}" for s in stages) + ")"
        cases = [
            f"WHEN status = 'kept' AND ({any_old}) THEN 'borderline'",
            f"WHEN status = 'kept' AND ({any_new}) THEN 'dropped'",
        ]
        for i, s in enumerate(stages):
            passes = " AND ".join(f"new_{t} IS NULL" for t in stages[: i + 1])
            kind = "added" if s == "tokenizer" else "may_add"  # nothing that judges runs after the tokenizer
            cases += [
                f"WHEN stage = '{s}' AND in_{s} AND old_{s} IS NULL THEN 'borderline'",
                f"WHEN stage = '{s}' AND in_{s} AND {passes} THEN '{kind}'",
            ]
        change = f"CASE {' '.join(cases)} END"
        return (
            f"SELECT *, {change} AS change, {new_reason} AS new_reason "
            f"FROM (SELECT *, {', '.join(cols)} FROM items)"
        )

    def _nearest(
        self, cur: Any, explored: str, focus: str, new: Recipe, args: dict[str, Any]
    ) -> dict[str, Any]:
        bound = th.BY_PATH.get(focus)
        if bound is None or focus not in {b["path"] for b in self.bounds()}:
            raise QueryError(f"no explorable bound {focus!r} in this build")
        limit = self._bound_limit(bound, new)
        s = bound.statistic
        fires = {
            "<": "(s < $limit)",
            ">": "(s > $limit AND NOT isnan(s))",
            ">=": "(s >= $limit AND NOT isnan(s))",
        }[bound.trigger]
        sides = {}
        for name, cond in (("fires", fires), ("holds", f"NOT {fires}")):
            sql = (
                f"WITH explored AS ({explored}) "
                "SELECT id, status, stage, reason, task, voice, duration_s, shard, change, "
                "s AS statistic FROM "
                f"(SELECT *, {s} AS s FROM explored WHERE in_{bound.stage}) "
                f'WHERE isfinite(s::DOUBLE) AND {cond} ORDER BY abs(s - $limit), "index", id LIMIT {NEAREST}'
            )
            cur.execute(sql, th.used(sql, args | {"limit": limit}))
            sides[name] = [
                r | {"has_audio": r["status"] == "kept" or r["shard"] is not None} for r in _records(cur)
            ]
        return {
            "path": focus,
            "statistic": s,
            "limit": limit,
            "trigger": bound.trigger,
            "role": bound.role,
            **sides,
        }

    def recipe_yaml(self, changes: dict[str, float]) -> str:
        """The build's recipe.yaml with ``changes`` applied: the file to rebuild with."""
        data = json.loads(json.dumps(self.recipe_data))
        for path, value in sorted(changes.items()):
            bound = th.BY_PATH[path]
            section = data.setdefault(bound.section, {})
            section[bound.key] = int(value) if bound.integer else float(value)
        head = "".join(f"# {p}: {_old_value(self.recipe, p)} -> {v:g}\n" for p, v in sorted(changes.items()))
        note = f"# recipe of build {self.root.name!r}" + (
            ", changed in the threshold explorer:\n" if head else "\n"
        )
        return note + head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _old_value(recipe: Recipe, path: str) -> str:
    b = th.BY_PATH[path]
    return f"{getattr(getattr(recipe, b.section), b.key):g}"


def _stat_value(b: th.Bound, row: dict[str, Any]) -> float | None:
    values = [row.get(m) for m in b.metrics]
    if any(v is None or isinstance(v, str) for v in values):
        return None
    if b.compute is not None:
        return b.compute(dict(zip(b.metrics, values, strict=True)))
    return max(values) if len(values) > 1 else values[0]


def _fires(trigger: str, x: float, limit: float) -> bool:
    return {"<": x < limit, ">": x > limit, ">=": x >= limit}[trigger]


def _table(counts: dict[str, dict[str, int]], label: str) -> list[dict[str, Any]]:
    return [{label: name, **counts[name]} for name in sorted(counts)]
