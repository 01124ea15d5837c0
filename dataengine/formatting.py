"""Ichigo-compatible prompt strings and the seeded, exact instruction/transcription task mix."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

import numpy as np

from dataengine.hashing import unit_draw, weighted_choice
from dataengine.sample import Sample

SOUND_START = "<|sound_start|>"
SOUND_END = "<|sound_end|>"
INSTRUCTION = "instruction"
TRANSCRIPTION = "transcription"

TRANSCRIPTION_REQUESTS = (
    "Transcribe the following audio clip:",
    "Convert the spoken words to text:",
    "What is being said in this audio clip:",
    "Transcribe the speech in this audio sample:",
    "Please write down what is being said in the audio clip:",
    "Generate a transcript from this sound file:",
    "Recognize the speech in this audio clip:",
    "Produce a text version of this audio recording:",
)


def sound_string(tokens: Iterable[int]) -> str:
    """``<|sound_start|><|sound_0042|>…<|sound_end|>`` as Ichigo / llama3-s models read it."""
    return SOUND_START + "".join(f"<|sound_{int(t):04d}|>" for t in tokens) + SOUND_END


def parse_sound_string(text: str) -> np.ndarray:
    """The codes of a sound string (inverse of :func:`sound_string`)."""
    if not (text.startswith(SOUND_START) and text.endswith(SOUND_END)):
        raise ValueError("not a sound string")
    body = text[len(SOUND_START) : -len(SOUND_END)]
    codes = [int(p) for p in body.replace("<|sound_", " ").replace("|>", " ").split()]
    return np.asarray(codes, dtype=np.int16)


class TaskMixer:
    """Assigns tasks to kept samples in arrival order so the mix is exact in every block.

    The ratio is a fraction ``k/n`` (denominator at most 100); each consecutive block of ``n`` kept
    samples holds exactly ``k`` instruction samples, placed by a seeded shuffle. Runs in the ordered
    (single) part of the pipeline, so the result does not depend on workers.
    """

    def __init__(self, instruction_ratio: float, seed: int) -> None:
        fraction = Fraction(instruction_ratio).limit_denominator(100)
        self.block = fraction.denominator
        self.instructions_per_block = fraction.numerator
        self.seed = seed
        self.count = 0
        self._pattern: list[str] = []

    def _block_pattern(self, block: int) -> list[str]:
        order = sorted(range(self.block), key=lambda pos: unit_draw(self.seed, "task-block", block, pos))
        tasks = [TRANSCRIPTION] * self.block
        for pos in order[: self.instructions_per_block]:
            tasks[pos] = INSTRUCTION
        return tasks

    def peek(self) -> str:
        """The task of the next kept sample, without taking it (a sample that then fails is not counted)."""
        block, position = divmod(self.count, self.block)
        if position == 0 or not self._pattern:
            self._pattern = self._block_pattern(block)
        return self._pattern[position]

    def next_task(self) -> str:
        task = self.peek()
        self.count += 1
        return task


def format_sample(sample: Sample, task: str, seed: int) -> None:
    """Fill ``sample.task`` and ``sample.text`` (a two-turn conversation in Ichigo's layout)."""
    if sample.tokens is None:
        raise ValueError(f"{sample.id}: no sound tokens to format")
    sound = sound_string(sample.tokens)
    if task == INSTRUCTION:
        user, assistant = sound, sample.response
    else:
        weights = [1.0] * len(TRANSCRIPTION_REQUESTS)
        request = TRANSCRIPTION_REQUESTS[weighted_choice(weights, seed, "request", sample.id)]
        user, assistant = f"{request}\n{sound}", sample.prompt
    sample.task = task
    sample.text = {
        "conversations": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    }
