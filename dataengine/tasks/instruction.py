"""``instruction``: a spoken prompt answered in text (Ichigo's main task)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from dataengine.recipe import RECORDING_SOURCES
from dataengine.sample import RECORDING, Sample
from dataengine.tasks.base import Task
from dataengine.tasks.long_prompts import join_pairs


class InstructionTask(Task):
    """Prompt/response pairs; the user turn is spoken by TTS (its key is the sample id)."""

    name = "instruction"
    needs = ("answer", "no_answer")
    """What a recording's row must have for this task: its ``answer`` (a spoken question's text answer)."""

    @property
    def on_recordings(self) -> bool:
        return self.source.kind in RECORDING_SOURCES

    def spoken_origins(self) -> tuple[str, ...]:
        return (RECORDING,) if self.on_recordings else self.origins

    def preparation(self) -> str:
        if self.on_recordings:  # its own stream: the rows it can use differ from the other tasks'
            return f"recording_{self.name}"
        long = self.config.long_prompts
        tokens = ":t2s" if self.config.tokens == "t2s" else ""
        return "spoken_pair" + (f":{json.dumps(long.model_dump(), sort_keys=True)}" if long else "") + tokens

    def samples(self, rows: Iterator[Sample] | None) -> Iterator[Sample]:
        assert rows is not None
        long = self.config.long_prompts
        if long is not None:
            rows = join_pairs(rows, long, self.recipe.seed, self.recipe.text_filters.chars_per_second)
        if self.on_recordings:
            yield from self._recordings(rows)
            return
        for sample in rows:
            if sample.kept and len(sample.turns) != 2:
                sample.drop(
                    "source", "not_single_turn", float(len(sample.turns)), "a conversation of several turns"
                )
            if sample.kept:
                user = sample.turns[0]
                user.origin, user.key = self.spoken_origin(sample.id), sample.id
            yield sample

    def _recordings(self, rows: Iterator[Sample]) -> Iterator[Sample]:
        """Recordings keep their audio; one without what the task needs is a reject row saying so."""
        what, reason = self.needs
        for sample in rows:
            if sample.kept:
                user, assistant = sample.turns
                text = user.text if what == "transcript" else assistant.text
                if not text.strip():
                    sample.drop("source", reason, detail=f"{self.name} needs the recording's {what}")
            yield sample
