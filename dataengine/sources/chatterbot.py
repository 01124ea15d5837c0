"""The embedded default source: English prompt/response pairs from ``chatterbot-corpus`` (BSD-3-Clause)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

from dataengine.recipe import ChatterbotSource, SettingError
from dataengine.sample import Sample

LICENSE = "BSD-3-Clause (chatterbot-corpus)"


def corpus_dir() -> Path:
    import chatterbot_corpus

    return Path(chatterbot_corpus.__file__).parent / "data" / "english"


def _corpus_files(config: ChatterbotSource) -> list[Path]:
    """The corpus files the recipe selects; ValueError naming unknown categories (and the known ones)."""
    files = sorted(corpus_dir().glob("*.yml"))
    if config.categories is None:
        return files
    wanted = set(config.categories)
    unknown = wanted - {f.stem for f in files}
    if unknown:
        names, known = ", ".join(sorted(unknown)), ", ".join(f.stem for f in files)
        raise SettingError("source.categories", f"unknown chatterbot categories: {names} (known: {known})")
    return [f for f in files if f.stem in wanted]


def check_chatterbot(config: ChatterbotSource) -> None:
    _corpus_files(config)


def iter_chatterbot(config: ChatterbotSource) -> Iterator[Sample]:
    """First two turns of every conversation, files in name order; ids ``chatterbot-<file>-<n>``."""
    for path in _corpus_files(config):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for n, turns in enumerate(data.get("conversations") or []):
            sample_id = f"chatterbot-{path.stem}-{n:04d}"
            source = f"chatterbot/{path.stem}"
            if not isinstance(turns, list) or len(turns) < 2:
                sample = Sample(id=sample_id, index=0, source=source)
                yield sample.drop("source", "bad_row", detail="conversation has fewer than two turns")
                continue
            yield Sample.pair(sample_id, 0, str(turns[0]), str(turns[1]), source)
