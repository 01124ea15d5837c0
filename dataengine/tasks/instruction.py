"""``instruction``: a spoken prompt answered in text (Ichigo's main task)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from dataengine.sample import Sample
from dataengine.tasks.base import Task
from dataengine.tasks.long_prompts import join_pairs


class InstructionTask(Task):
    """Prompt/response pairs; the user turn is spoken by TTS (its key is the sample id)."""

    name = "instruction"

    def preparation(self) -> str:
        long = self.config.long_prompts
        tokens = ":t2s" if self.config.tokens == "t2s" else ""
        return "spoken_pair" + (f":{json.dumps(long.model_dump(), sort_keys=True)}" if long else "") + tokens

    def samples(self, rows: Iterator[Sample] | None) -> Iterator[Sample]:
        assert rows is not None
        long = self.config.long_prompts
        if long is not None:
            rows = join_pairs(rows, long, self.recipe.seed, self.recipe.text_filters.chars_per_second)
        for sample in rows:
            if sample.kept and len(sample.turns) != 2:
                sample.drop(
                    "source", "not_single_turn", float(len(sample.turns)), "a conversation of several turns"
                )
            if sample.kept:
                user = sample.turns[0]
                user.origin, user.key = self.spoken_origin(sample.id), sample.id
            yield sample
