"""Which stored metric each recipe bound judges, and every filter's decision as a DuckDB expression.

This is the one place that maps recipe bounds to manifest metrics until stages declare their own
(issue 13: a stage registry); switch :data:`BOUNDS` and :data:`RULES` to it then. The expressions mirror
the stages' decision code exactly (tests compare them with ``AudioFilter.decide``, ``asr_failing``,
``TokenizerStage.judge`` and ``check_text`` on real builds and on random metrics near every bound):

- ``audio_filters``: :func:`dataengine.audio.filters.failing_reasons` (first failing check, same order);
- ``asr``: :func:`dataengine.audio.asr.asr_failing`;
- ``tokenizer``: ``TokenizerStage.judge`` (``n_sound_tokens > max_sound_tokens``);
- ``text_filters``: the one check of :func:`dataengine.text.filters.check_text` whose input is stored
  (``est_sound_tokens > max_sound_tokens * length_margin``); its other checks read the text itself.

Python compares NaN as false both ways, DuckDB orders NaN above every number, so every ``>``/``>=`` on a
metric also asks ``NOT isnan``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dataengine.recipe import ASRConfig, AudioFilterConfig, Recipe, TextFilterConfig, TokenizerConfig

STAGE_ORDER: tuple[str, ...] = (
    "text_filters", "tts", "audio_filters", "whisper", "asr", "tokenizer", "write",
)  # fmt: skip
"""Stage names in pipeline order (``dataengine.pipeline.build_stages``, then the writer). ``whisper`` (the
encoder pass the tokenizer and the ASR round trip share) measures and drops only on errors."""

SECTIONS: dict[str, type] = {
    "text_filters": TextFilterConfig,
    "audio_filters": AudioFilterConfig,
    "asr": ASRConfig,
    "tokenizer": TokenizerConfig,
}
"""Recipe sections that hold bounds."""


@dataclass(frozen=True)
class Bound:
    """One recipe number a stage compares a stored metric with.

    ``trigger`` is the comparison ``statistic <trigger> value`` that makes this part of the check fire:
    for a ``bound`` firing means the sample fails; for a ``gate`` it means the check applies; for a
    ``selector`` it picks which limit applies (``codec_short_frames``: short clips get the laxer one).
    """

    section: str
    key: str
    stage: str
    statistic: str
    """SQL over manifest columns: a column, or e.g. the larger of two edge silences."""
    metrics: tuple[str, ...]
    trigger: str
    role: str = "bound"
    note: str = ""
    factor: str | None = None
    """Another bound (``section.key``) the value is multiplied by before the comparison."""
    applies_if: tuple[str, str, str] | None = None
    """``(metric, op, other bound)``: this part of the check counts only where ``metric op other`` holds
    (e.g. the codec limit for short clips only where ``codec_frames < codec_short_frames``)."""
    compute: Callable[[Mapping[str, float]], float] | None = None
    """``statistic`` in Python, over one row's ``metrics`` (default: the metric, or the largest of several,
    as for the edge silences): what a sample page compares with the limit."""

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def integer(self) -> bool:
        return SECTIONS[self.section].model_fields[self.key].annotation is int

    def default(self) -> float:
        return SECTIONS[self.section].model_fields[self.key].default


INTERIOR_SILENCE_SQL = (  # the same operations in the same order as the Python (equal to the last bit)
    "(CASE WHEN duration_s - (leading_silence_s + trailing_silence_s) <= 0 THEN 1.0 ELSE "
    "(silence_fraction * duration_s - (leading_silence_s + trailing_silence_s)) / "
    "(duration_s - (leading_silence_s + trailing_silence_s)) END)"
)
"""``interior_silence_fraction`` of :mod:`dataengine.audio.filters`, in SQL."""


def _interior_silence(row: Mapping[str, float]) -> float:
    from dataengine.audio.filters import interior_silence_fraction  # the stage's own formula

    return interior_silence_fraction(dict(row))


def _b(section: str, key: str, stage: str, metric: str, trigger: str, **extra: str) -> Bound:
    return Bound(section, key, stage, metric, (metric,), trigger, **extra)


BOUNDS: tuple[Bound, ...] = (
    _b("text_filters", "length_margin", "text_filters", "est_sound_tokens", ">",
       factor="tokenizer.max_sound_tokens",
       note="fails when est_sound_tokens > tokenizer.max_sound_tokens x length_margin"),
    _b("audio_filters", "min_duration_s", "audio_filters", "duration_s", "<"),
    _b("audio_filters", "max_duration_s", "audio_filters", "duration_s", ">"),
    _b("audio_filters", "min_speech_fraction", "audio_filters", "speech_fraction", "<"),
    _b("audio_filters", "min_speech_prob", "audio_filters", "speech_prob_mean", "<"),
    Bound("audio_filters", "max_edge_silence_s", "audio_filters",
          "greatest(leading_silence_s, trailing_silence_s)",
          ("leading_silence_s", "trailing_silence_s"), ">"),
    Bound("audio_filters", "max_silence_fraction", "audio_filters", INTERIOR_SILENCE_SQL,
          ("silence_fraction", "duration_s", "leading_silence_s", "trailing_silence_s"), ">",
          compute=_interior_silence),
    _b("audio_filters", "max_clipping_ratio", "audio_filters", "clipping_ratio", ">"),
    _b("audio_filters", "max_band_edge_db", "audio_filters", "band_edge_db", ">"),
    _b("audio_filters", "min_hf_energy_db", "audio_filters", "hf_energy_db", "<"),
    _b("audio_filters", "min_hf_dynamics_db", "audio_filters", "hf_dynamics_db", "<",
       note="only where lf_dynamics_db >= hf_dynamics_gate_db",
       applies_if=("lf_dynamics_db", ">=", "audio_filters.hf_dynamics_gate_db")),
    _b("audio_filters", "hf_dynamics_gate_db", "audio_filters", "lf_dynamics_db", ">=", role="gate",
       note="min_hf_dynamics_db applies only at or above it"),
    _b("audio_filters", "max_spectral_hole_ratio", "audio_filters", "spectral_hole_ratio", ">"),
    _b("audio_filters", "max_codec_score", "audio_filters", "codec_score", ">",
       note="clips with codec_frames >= codec_short_frames",
       applies_if=("codec_frames", ">=", "audio_filters.codec_short_frames")),
    _b("audio_filters", "max_codec_score_short", "audio_filters", "codec_score", ">",
       note="clips with codec_frames < codec_short_frames",
       applies_if=("codec_frames", "<", "audio_filters.codec_short_frames")),
    _b("audio_filters", "codec_short_frames", "audio_filters", "codec_frames", "<", role="selector",
       note="below it a clip is short: max_codec_score_short applies"),
    _b("audio_filters", "min_snr_db", "audio_filters", "snr_db", "<",
       note="noise only when level_snr_db < min_level_snr_db too",
       applies_if=("level_snr_db", "<", "audio_filters.min_level_snr_db")),
    _b("audio_filters", "min_level_snr_db", "audio_filters", "level_snr_db", "<",
       note="noise only when snr_db < min_snr_db too",
       applies_if=("snr_db", "<", "audio_filters.min_snr_db")),
    _b("asr", "max_cer", "asr", "asr_cer", ">"),
    _b("asr", "max_wer", "asr", "asr_wer", ">"),
    _b("tokenizer", "max_sound_tokens", "tokenizer", "n_sound_tokens", ">",
       note="also text_filters: est_sound_tokens > max_sound_tokens x length_margin"),
)  # fmt: skip

NOT_BOUNDS: dict[str, dict[str, str]] = {
    "text_filters": {
        key: "judged from the text itself; the ratio is not stored"
        for key in ("max_symbol_ratio", "max_digit_ratio", "min_chars")
    }
    | {"chars_per_second": "changes est_sound_tokens itself (a measuring setting)"},
    "audio_filters": {"hf_cutoff_hz": "a measuring setting: changing it re-measures hf_energy_db"},
    "asr": {key: "measuring setting" for key in ("model", "cpu_threads", "beam_size", "share_encoder")},
    "tokenizer": {
        key: "measuring setting" for key in ("checkpoint", "whisper", "batch_size", "device", "dtype")
    },
}
"""Fields of :data:`SECTIONS` that are not explorable bounds, and why (a test checks the two lists
cover every field)."""

BY_PATH: dict[str, Bound] = {b.path: b for b in BOUNDS}


def bounds_for_metric(metric: str) -> list[Bound]:
    return [b for b in BOUNDS if metric in b.metrics]


# --- the decisions as SQL ----------------------------------------------------------------------------

Param = Callable[[str, str], str]
"""``param(section, key)`` -> the SQL placeholder for that recipe value."""


def _lt(column: str, limit: str) -> str:
    return f"({column} < {limit})"


def _gt(column: str, limit: str) -> str:
    return f"({column} > {limit} AND NOT isnan({column}))"


def _ge(column: str, limit: str) -> str:
    return f"({column} >= {limit} AND NOT isnan({column}))"


def _case(checks: list[tuple[str, str]]) -> str:
    return "CASE " + " ".join(f"WHEN {cond} THEN '{reason}'" for reason, cond in checks) + " END"


def _audio_sql(p: Param) -> str:
    a = lambda key: p("audio_filters", key)  # noqa: E731
    non_speech = " OR ".join(
        (_lt("speech_fraction", a("min_speech_fraction")), _lt("speech_prob_mean", a("min_speech_prob")))
    )
    silence = " OR ".join(
        (
            _gt("leading_silence_s", a("max_edge_silence_s")),
            _gt("trailing_silence_s", a("max_edge_silence_s")),
            _gt(INTERIOR_SILENCE_SQL, a("max_silence_fraction")),
        )
    )
    codec_limit = (
        f"(CASE WHEN {_lt('codec_frames', a('codec_short_frames'))} "
        f"THEN {a('max_codec_score_short')} ELSE {a('max_codec_score')} END)"
    )
    compression = " OR ".join(
        (
            _gt("band_edge_db", a("max_band_edge_db")),
            _lt("hf_energy_db", a("min_hf_energy_db")),
            "("
            + _lt("hf_dynamics_db", a("min_hf_dynamics_db"))
            + " AND "
            + _ge("lf_dynamics_db", a("hf_dynamics_gate_db"))
            + ")",
            _gt("spectral_hole_ratio", a("max_spectral_hole_ratio")),
            _gt("codec_score", codec_limit),
        )
    )
    return _case(
        [  # the order of failing_reasons: the first that fires is the reason
            ("too_short", _lt("duration_s", a("min_duration_s"))),
            ("too_long", _gt("duration_s", a("max_duration_s"))),
            ("non_speech", f"({non_speech})"),
            ("silence", f"({silence})"),  # reached only when not non_speech, as in failing_reasons
            ("clipping", _gt("clipping_ratio", a("max_clipping_ratio"))),
            ("bad_compression", f"({compression})"),
            ("noise", f"({_lt('snr_db', a('min_snr_db'))} AND {_lt('level_snr_db', a('min_level_snr_db'))})"),
        ]
    )


def _asr_sql(p: Param) -> str:
    failed = f"({_gt('asr_cer', p('asr', 'max_cer'))} OR {_gt('asr_wer', p('asr', 'max_wer'))})"
    return _case([("asr_mismatch", failed)])


def _tokenizer_sql(p: Param) -> str:
    return _case([("too_many_sound_tokens", _gt("n_sound_tokens", p("tokenizer", "max_sound_tokens")))])


def _text_sql(p: Param) -> str:
    limit = f"({p('tokenizer', 'max_sound_tokens')} * {p('text_filters', 'length_margin')})"
    return _case([("too_long_estimate", _gt("est_sound_tokens", limit))])


@dataclass(frozen=True)
class StageRule:
    """A stage's decision over its stored metrics; ``judged`` are the reject reasons it can re-decide
    (a sample rejected at the stage for another reason stays rejected whatever the bounds)."""

    stage: str
    metrics: tuple[str, ...]
    judged: tuple[str, ...]
    sql: Callable[[Param], str]


RULES: tuple[StageRule, ...] = (
    StageRule("text_filters", ("est_sound_tokens",), ("too_long_estimate",), _text_sql),
    StageRule(
        "audio_filters",
        (
            "duration_s", "speech_fraction", "speech_prob_mean", "silence_fraction", "leading_silence_s",
            "trailing_silence_s", "clipping_ratio", "hf_energy_db", "band_edge_db", "spectral_hole_ratio",
            "hf_dynamics_db", "lf_dynamics_db", "codec_score", "codec_frames", "snr_db", "level_snr_db",
        ),
        ("too_short", "too_long", "non_speech", "silence", "clipping", "bad_compression", "noise"),
        _audio_sql,
    ),
    StageRule("asr", ("asr_wer", "asr_cer"), ("asr_mismatch",), _asr_sql),
    StageRule("tokenizer", ("n_sound_tokens",), ("too_many_sound_tokens",), _tokenizer_sql),
)  # fmt: skip


def active_rules(recipe: Recipe, columns: set[str]) -> list[StageRule]:
    """The rules of the stages this build ran whose metrics its manifest holds."""
    rules = [r for r in RULES if r.stage != "asr" or recipe.asr.model != "none"]
    return [r for r in rules if set(r.metrics) <= columns]


def param_name(section: str, key: str) -> str:
    return f"{section}__{key}"


def sql_param(section: str, key: str) -> str:
    return "$" + param_name(section, key)


def params(recipe: Recipe, prefix: str = "") -> dict[str, Any]:
    """Values of every bound the rules read, keyed as :func:`sql_param` names them (plus ``prefix``)."""
    out = {}
    for section in SECTIONS:
        config = getattr(recipe, section)
        for key in {b.key for b in BOUNDS if b.section == section} | (
            {"max_sound_tokens"} if section == "tokenizer" else set()
        ):
            out[prefix + param_name(section, key)] = getattr(config, key)
    return out


def used(sql: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters ``sql`` names (DuckDB refuses any it does not)."""
    names = set(re.findall(r"\$(\w+)", sql))
    return {k: v for k, v in args.items() if k in names}


def prefixed(prefix: str) -> Param:
    return lambda section, key: "$" + prefix + param_name(section, key)


def with_changes(recipe: Recipe, changes: Mapping[str, float]) -> Recipe:
    """``recipe`` with bounds replaced (``{"audio_filters.min_duration_s": 1.2}``), validated as a recipe:
    an impossible combination raises the recipe's own ValueError (pydantic ValidationError)."""
    data = recipe.model_dump()
    for path, value in changes.items():
        bound = BY_PATH[path]
        data[bound.section][bound.key] = int(value) if bound.integer else float(value)
    return Recipe.model_validate(data)
