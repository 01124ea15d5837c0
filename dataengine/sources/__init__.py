"""Sources yield instruction/response pairs with stable ids; broken rows become rejected samples."""

from __future__ import annotations

from collections.abc import Iterator

from dataengine.recipe import ChatterbotSource, FilesSource, HFSource, Recipe
from dataengine.sample import Sample


def iter_source(recipe: Recipe) -> Iterator[Sample]:
    """Yield the recipe's source rows as samples, at most ``recipe.limit`` of them."""
    config = recipe.source
    if isinstance(config, ChatterbotSource):
        from dataengine.sources.chatterbot import iter_chatterbot

        rows = iter_chatterbot(config)
    elif isinstance(config, FilesSource):
        from dataengine.sources.files import iter_files

        rows = iter_files(config)
    elif isinstance(config, HFSource):
        from dataengine.sources.hf import iter_hf

        rows = iter_hf(config)
    else:  # pragma: no cover - the recipe model admits no other kind
        raise TypeError(f"unknown source {config!r}")
    for index, sample in enumerate(rows):
        if recipe.limit is not None and index >= recipe.limit:
            break
        sample.index = index
        yield sample
