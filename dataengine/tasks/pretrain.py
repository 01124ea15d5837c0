"""``pretrain``: a recording's sound tokens alone (Ichigo stage 1: next-token prediction over speech).

The sample is one user turn whose content is the sound string and nothing else; the training loader
packs such samples to ``max_seq_len`` (``training/configs/stage1_*.yaml``, ``train_on_input: true``).
A transcript, when the corpus has one, stays in the manifest and the json record, not in the tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

from dataengine.sample import RECORDING, Sample
from dataengine.tasks.base import FormatContext, Task


class PretrainTask(Task):
    name = "pretrain"
    origins = (RECORDING,)

    def preparation(self) -> str:
        return "recording_pretrain"

    def samples(self, rows: Iterator[Sample] | None) -> Iterator[Sample]:
        assert rows is not None
        for sample in rows:
            if sample.kept and not (sample.turns and sample.turns[0].origin == RECORDING):
                sample.drop("source", "not_a_recording", detail="pretrain needs a recordings/hf_audio source")
            yield sample

    def format(self, sample: Sample, context: FormatContext) -> None:
        sample.turns = sample.turns[:1]  # the recording alone: no answer turn
        sample.turns[0].prefix = ""
        sample.task = self.name
