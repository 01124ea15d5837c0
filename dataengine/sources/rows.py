"""Turn one raw row (a mapping) into a Sample, or a rejected Sample saying what is wrong with it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dataengine.sample import Sample
from dataengine.sources.conversations import parse_messages

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")


def safe_id(raw: Any) -> str:
    """An id usable as a WebDataset key: no dots, no slashes, no spaces."""
    return _UNSAFE_ID.sub("_", str(raw)).strip("_") or "row"


def _text(row: Mapping[str, Any], column: str) -> tuple[str | None, str | None]:
    """The column's text, or (None, reason)."""
    if column not in row:
        return None, f"missing column {column!r}"
    value = row[column]
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None, f"column {column!r} is not valid UTF-8"
    if not isinstance(value, str):
        return None, f"column {column!r} is {type(value).__name__}, expected text"
    if "\ufffd" in value:
        return None, f"column {column!r} is not valid UTF-8"
    return value, None


def row_to_sample(
    row: Mapping[str, Any] | Any,
    *,
    source: str,
    fallback_id: str,
    prompt_column: str,
    response_column: str,
    id_column: str | None,
    messages_column: str | None = None,
) -> Sample:
    """Map a row to a Sample (a prompt/response pair, or the conversation in ``messages_column``); a
    broken row becomes a rejected Sample (stage ``source``)."""
    row_id = fallback_id
    if isinstance(row, Mapping) and id_column and row.get(id_column) is not None:
        row_id = f"{source}-{safe_id(row[id_column])}"
    sample = Sample(id=row_id, index=0, source=source)
    if not isinstance(row, Mapping):
        return sample.drop("source", "bad_row", detail=f"row is {type(row).__name__}, expected an object")
    if messages_column is not None:
        if messages_column not in row:
            return sample.drop("source", "bad_row", detail=f"missing column {messages_column!r}")
        turns, problem = parse_messages(row[messages_column])
        if problem is not None:
            return sample.drop("source", "bad_row", detail=f"column {messages_column!r}: {problem}")
        sample.turns = turns
        return sample
    prompt, problem = _text(row, prompt_column)
    if problem is None:
        response, problem = _text(row, response_column)
    if problem is not None:
        return sample.drop("source", "bad_row", detail=problem)
    return Sample.pair(row_id, 0, prompt or "", response or "", source)
