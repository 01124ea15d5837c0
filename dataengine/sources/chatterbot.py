"""The embedded default source: English prompt/response pairs from ``chatterbot-corpus`` (BSD-3-Clause)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

from dataengine.recipe import ChatterbotSource
from dataengine.sample import Sample

LICENSE = "BSD-3-Clause (chatterbot-corpus)"


def corpus_dir() -> Path:
    import chatterbot_corpus

    return Path(chatterbot_corpus.__file__).parent / "data" / "english"


def iter_chatterbot(config: ChatterbotSource) -> Iterator[Sample]:
    """First two turns of every conversation, files in name order; ids ``chatterbot-<file>-<n>``."""
    files = sorted(corpus_dir().glob("*.yml"))
    if config.categories is not None:
        wanted = set(config.categories)
        unknown = wanted - {f.stem for f in files}
        if unknown:
            raise ValueError(f"unknown chatterbot categories: {', '.join(sorted(unknown))}")
        files = [f for f in files if f.stem in wanted]
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for n, turns in enumerate(data.get("conversations") or []):
            sample_id = f"chatterbot-{path.stem}-{n:04d}"
            sample = Sample(id=sample_id, index=0, prompt="", response="", source=f"chatterbot/{path.stem}")
            if not isinstance(turns, list) or len(turns) < 2:
                yield sample.drop("source", "bad_row", detail="conversation has fewer than two turns")
                continue
            sample.prompt, sample.response = str(turns[0]), str(turns[1])
            yield sample
