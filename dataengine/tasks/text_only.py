"""``text_only``: the text conversation unchanged, no sound (keeps the base model's text skills)."""

from __future__ import annotations

from collections.abc import Iterator

from dataengine.sample import Sample
from dataengine.tasks.base import Task


class TextOnlyTask(Task):
    name = "text_only"
    origins = ()

    def samples(self, rows: Iterator[Sample] | None) -> Iterator[Sample]:
        assert rows is not None
        yield from rows
