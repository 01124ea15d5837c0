"""Any 🤗 ``datasets`` dataset: a Hub name (from the local cache when offline) or a local folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataengine.errors import one_line
from dataengine.recipe import HFSource, SettingError
from dataengine.sample import Sample
from dataengine.sources.rows import row_to_sample, safe_id


def _looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def _open(config: HFSource) -> Any:
    import datasets

    return datasets.load_dataset(
        config.name, config.config, split=config.split, revision=config.revision, streaming=True
    )


def check_hf(config: HFSource) -> None:
    """A local folder exists; the dataset, config and split open, and the first row can be read (for a Hub
    name: from the cache when offline). A streaming read of one row, not a download of the dataset."""
    if _looks_local(config.name) and not Path(config.name).expanduser().exists():
        raise SettingError("source.name", f"{config.name}: no such folder")
    try:
        next(iter(_open(config)), None)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types (offline, missing, bad split)
        where = f"{config.name!r}" + (f" (config {config.config!r})" if config.config else "")
        raise SettingError(
            "source", f"hf dataset {where}, split {config.split!r}: {type(exc).__name__}: {one_line(exc)}"
        ) from None


def iter_hf(config: HFSource) -> Iterator[Sample]:
    """Stream the split; ids are ``<name>-<row number>`` unless ``id_column`` is set."""
    dataset = _open(config)
    stem = safe_id(config.name.rstrip("/").rsplit("/", 1)[-1])
    for n, row in enumerate(dataset):
        yield row_to_sample(
            row,
            source=stem,
            fallback_id=f"{stem}-{n:07d}",
            prompt_column=config.prompt_column,
            response_column=config.response_column,
            id_column=config.id_column,
            messages_column=config.messages_column,
        )
