from collections import Counter

import numpy as np
import pytest

from dataengine.formatting import (
    INSTRUCTION,
    TRANSCRIPTION,
    TaskMixer,
    format_sample,
    parse_sound_string,
    sound_string,
)
from dataengine.sample import Sample


def test_sound_string_is_ichigo_layout_and_round_trips() -> None:
    text = sound_string([42, 7, 511])
    assert text == "<|sound_start|><|sound_0042|><|sound_0007|><|sound_0511|><|sound_end|>"
    assert parse_sound_string(text).tolist() == [42, 7, 511]
    assert parse_sound_string(sound_string([])).tolist() == []


@pytest.mark.parametrize(("ratio", "n"), [(0.7, 1000), (0.7, 10), (0.25, 400), (1.0, 50), (0.0, 50)])
def test_mix_is_exact_per_block(ratio: float, n: int) -> None:
    mixer = TaskMixer(ratio, seed=3)
    tasks = [mixer.next_task() for _ in range(n)]
    assert Counter(tasks)[INSTRUCTION] == round(ratio * n)


def test_mix_is_seeded() -> None:
    a = [TaskMixer(0.7, 1).next_task() for _ in range(1)]
    first = TaskMixer(0.7, 1)
    second = TaskMixer(0.7, 1)
    other = TaskMixer(0.7, 2)
    seq1 = [first.next_task() for _ in range(100)]
    assert seq1 == [second.next_task() for _ in range(100)]
    assert seq1 != [other.next_task() for _ in range(100)]
    assert a[0] == seq1[0]


def test_format_sample_builds_conversations() -> None:
    sample = Sample(id="x", index=0, prompt="What is AI?", response="A field of study.")
    sample.tokens = np.array([1, 2, 3], dtype=np.int16)
    format_sample(sample, INSTRUCTION, seed=0)
    user, assistant = sample.text["conversations"]
    assert user == {"role": "user", "content": sound_string([1, 2, 3])}
    assert assistant["content"] == "A field of study."

    format_sample(sample, TRANSCRIPTION, seed=0)
    user, assistant = sample.text["conversations"]
    assert user["content"].endswith(sound_string([1, 2, 3]))
    assert len(user["content"]) > len(sound_string([1, 2, 3])) + 10
    assert assistant["content"] == "What is AI?"
    assert sample.task == TRANSCRIPTION


def test_peek_does_not_take_a_task() -> None:
    mixer, reference = TaskMixer(0.7, seed=5), TaskMixer(0.7, seed=5)
    for _ in range(25):
        assert mixer.peek() == mixer.peek() == mixer.next_task() == reference.next_task()
    assert mixer.count == 25
