"""``transcription``: a transcription request and a spoken prompt, answered by the prompt's text."""

from __future__ import annotations

from dataengine.formatting import TRANSCRIPTION_REQUESTS
from dataengine.hashing import weighted_choice
from dataengine.sample import Sample
from dataengine.tasks.base import FormatContext
from dataengine.tasks.instruction import InstructionTask


class TranscriptionTask(InstructionTask):
    """Shares the instruction task's preparation (a stream when the settings agree); formatting puts a
    seeded request (Ichigo's own, by default) before the sound and the spoken text as the answer."""

    name = "transcription"
    needs = ("transcript", "no_transcript")

    @property
    def requests(self) -> tuple[str, ...]:
        return tuple(self.config.requests or TRANSCRIPTION_REQUESTS)

    def format(self, sample: Sample, context: FormatContext) -> None:
        requests = self.requests
        request = requests[weighted_choice([1.0] * len(requests), context.seed, "request", sample.id)]
        user, assistant = sample.turns
        user.prefix = request
        assistant.text = user.text
        sample.task = self.name
