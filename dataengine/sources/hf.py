"""Any 🤗 ``datasets`` dataset: a Hub name (from the local cache when offline) or a local folder."""

from __future__ import annotations

from collections.abc import Iterator

from dataengine.recipe import HFSource
from dataengine.sample import Sample
from dataengine.sources.rows import row_to_sample, safe_id


def iter_hf(config: HFSource) -> Iterator[Sample]:
    """Stream the split; ids are ``<name>-<row number>`` unless ``id_column`` is set."""
    import datasets

    dataset = datasets.load_dataset(
        config.name, config.config, split=config.split, revision=config.revision, streaming=True
    )
    stem = safe_id(config.name.rstrip("/").rsplit("/", 1)[-1])
    for n, row in enumerate(dataset):
        yield row_to_sample(
            row,
            source=stem,
            fallback_id=f"{stem}-{n:07d}",
            prompt_column=config.prompt_column,
            response_column=config.response_column,
            id_column=config.id_column,
        )
