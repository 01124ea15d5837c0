"""Sources yield conversations (most often a prompt/response pair) with stable ids; broken rows become
rejected samples.

Each kind lives in its own module with two functions: one that yields its rows as samples and a cheap
``check`` run before a build starts (unknown categories, unreadable files, a dataset that will not open),
raising :class:`~dataengine.recipe.SettingError`. Register a new kind in :data:`SOURCES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any

from dataengine.idset import IdSet
from dataengine.recipe import Recipe, SettingError
from dataengine.sample import Sample
from dataengine.sources.conversations import check_conversation

SOURCES: dict[str, tuple[str, str, str]] = {
    "chatterbot": ("dataengine.sources.chatterbot", "iter_chatterbot", "check_chatterbot"),
    "files": ("dataengine.sources.files", "iter_files", "check_files"),
    "hf": ("dataengine.sources.hf", "iter_hf", "check_hf"),
    "recordings": ("dataengine.sources.recordings", "iter_recordings", "check_recordings"),
    "hf_audio": ("dataengine.sources.recordings", "iter_hf_audio", "check_hf_audio"),
}
"""Source ``kind`` -> (module, row iterator, check), imported on first use."""


def _source_function(kind: str, which: int) -> Callable[[Any], Any]:
    try:
        spec = SOURCES[kind]
    except KeyError:  # pragma: no cover - the recipe model admits no other kind
        raise TypeError(f"unknown source kind {kind!r}") from None
    return getattr(import_module(spec[0]), spec[which])


def check_source(recipe: Recipe) -> None:
    """The cheap checks of every source the build reads (the recipe's, and each task's own); raises
    SettingError, naming the task's key for a task's source, before any work starts."""
    _source_function(recipe.source.kind, 2)(recipe.source)
    for name, task in recipe.tasks.enabled().items():
        source = getattr(task, "source", None)
        if source is None:
            continue
        try:
            _source_function(source.kind, 2)(source)
        except SettingError as exc:
            message = str(exc).removeprefix(f"{exc.key}: ")
            raise SettingError(f"tasks.{name}.{exc.key}", message) from None


DUPLICATE_ID = "duplicate_id"
"""The reject reason (stage ``source``) of a row whose id an earlier usable row of its source had."""


def iter_rows(config: Any) -> Iterator[Sample]:
    """Every row of one source config as a checked conversation; ``index`` is the row's number.

    A row whose id an earlier usable row already had is rejected here (``source/duplicate_id``), before
    any stage works on it; the ids are kept in an :class:`~dataengine.idset.IdSet`, whose memory does not
    grow with the source."""
    seen = IdSet()
    try:
        for index, sample in enumerate(_source_function(config.kind, 1)(config)):
            sample.index = index
            sample = check_conversation(sample)
            if sample.kept and not seen.add(sample.id):
                sample.drop("source", DUPLICATE_ID, detail=f"id {sample.id} appeared earlier in the source")
            yield sample
    finally:
        seen.close()


def iter_source(recipe: Recipe) -> Iterator[Sample]:
    """Yield the recipe's (default) source rows as samples, at most ``recipe.limit`` of them."""
    for index, sample in enumerate(iter_rows(recipe.source)):
        if recipe.limit is not None and index >= recipe.limit:
            break
        yield sample
