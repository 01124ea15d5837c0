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


@pytest.mark.parametrize(
    ("ratio", "k", "block", "n"),
    [(0.7, 7, 10, 1003), (0.7, 7, 10, 10), (0.7, 7, 10, 6), (0.25, 1, 4, 402), (0.33, 33, 100, 250)]
    + [(1.0, 1, 1, 50), (0.0, 0, 1, 50)],
)
def test_mix_is_exact_per_block(ratio: float, k: int, block: int, n: int) -> None:
    """Every consecutive block of ``block`` kept samples holds exactly ``k`` instructions (the fraction
    written by hand), and a partial last block holds what some full block could start with."""
    mixer = TaskMixer(ratio, seed=3)
    tasks = [mixer.next_task() for _ in range(n)]
    assert set(tasks) <= {INSTRUCTION, TRANSCRIPTION}
    blocks = [tasks[start : start + block] for start in range(0, n, block)]
    full, tail = (blocks, []) if n % block == 0 else (blocks[:-1], blocks[-1])
    for number, part in enumerate(full):
        assert part.count(INSTRUCTION) == k, f"block {number}: {part}"
    if tail:  # the first m of a block: at most k instructions, at most block - k transcriptions
        m = len(tail)
        assert max(0, k - (block - m)) <= tail.count(INSTRUCTION) <= min(k, m), tail
    if 0 < k < block and len(full) >= 10:  # placed by a seeded shuffle, not one fixed pattern
        assert len({tuple(part) for part in full}) > 1


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
