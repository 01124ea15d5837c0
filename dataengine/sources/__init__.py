"""Sources yield instruction/response pairs with stable ids; broken rows become rejected samples.

Each kind lives in its own module with two functions: one that yields its rows as samples and a cheap
``check`` run before a build starts (unknown categories, unreadable files, a dataset that will not open),
raising :class:`~dataengine.recipe.SettingError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any

from dataengine.recipe import Recipe
from dataengine.sample import Sample

SOURCES: dict[str, tuple[str, str, str]] = {
    "chatterbot": ("dataengine.sources.chatterbot", "iter_chatterbot", "check_chatterbot"),
    "files": ("dataengine.sources.files", "iter_files", "check_files"),
    "hf": ("dataengine.sources.hf", "iter_hf", "check_hf"),
}
"""Source ``kind`` -> (module, row iterator, check), imported on first use."""


def _source_function(kind: str, which: int) -> Callable[[Any], Any]:
    try:
        spec = SOURCES[kind]
    except KeyError:  # pragma: no cover - the recipe model admits no other kind
        raise TypeError(f"unknown source kind {kind!r}") from None
    return getattr(import_module(spec[0]), spec[which])


def check_source(recipe: Recipe) -> None:
    """The source's cheap checks; raises SettingError before any work starts."""
    _source_function(recipe.source.kind, 2)(recipe.source)


def iter_source(recipe: Recipe) -> Iterator[Sample]:
    """Yield the recipe's source rows as samples, at most ``recipe.limit`` of them."""
    rows = _source_function(recipe.source.kind, 1)(recipe.source)
    for index, sample in enumerate(rows):
        if recipe.limit is not None and index >= recipe.limit:
            break
        sample.index = index
        yield sample
