"""The task mix: exact shares over N tasks, and a plan whose output does not depend on how (or how far
ahead) the samples were processed."""

from __future__ import annotations

import json
from collections import Counter, deque
from pathlib import Path

import numpy as np
import pytest

from dataengine.hashing import unit_draw
from dataengine.recipe import Recipe
from dataengine.sample import Sample
from dataengine.tasks import make_tasks
from dataengine.tasks.base import FormatContext, Task
from dataengine.tasks.mixer import MixError, TaskMixer, block_counts
from dataengine.tasks.plan import MixPlan

ICHIGO = {
    "instruction": 0.6,
    "transcription": 0.2,
    "noise_refusal": 0.1,
    "multi_turn": 0.05,
    "text_only": 0.05,
}


@pytest.mark.parametrize(
    ("shares", "block"),
    [
        (ICHIGO, 20),
        ({"instruction": 0.7, "transcription": 0.3}, 10),
        ({"a": 0.25, "b": 0.25, "c": 0.5}, 4),
        ({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 3),
        ({"a": 1.0}, 1),
    ],
)
def test_every_block_holds_each_share_exactly(shares: dict[str, float], block: int) -> None:
    mixer = TaskMixer(shares, seed=3)
    assert mixer.block == block
    tasks = [mixer.next_task() for _ in range(block * 25)]
    for start in range(0, len(tasks), block):
        counts = Counter(tasks[start : start + block])
        assert {t: counts[t] for t in shares} == {t: round(s * block) for t, s in shares.items()}
    assert (
        len({tuple(tasks[i : i + block]) for i in range(0, len(tasks), block)}) > 1 or block < 3
    )  # shuffled


def test_the_mix_is_seeded_and_two_shares_place_tasks_as_the_two_task_mixer_did() -> None:
    shares = {"instruction": 0.7, "transcription": 0.3}
    first, second, other = TaskMixer(shares, 1), TaskMixer(shares, 1), TaskMixer(shares, 2)
    seq = [first.next_task() for _ in range(100)]
    assert seq == [second.next_task() for _ in range(100)] and seq != [other.next_task() for _ in range(100)]
    # the two-task mixer: per block, positions sorted by a seeded draw, the first 7 are instruction
    for block in range(10):
        order = sorted(range(10), key=lambda pos: unit_draw(1, "task-block", block, pos))
        assert {p for p in range(10) if seq[block * 10 + p] == "instruction"} == set(order[:7])


def test_peek_does_not_take_a_task() -> None:
    mixer, reference = TaskMixer(ICHIGO, seed=5), TaskMixer(ICHIGO, seed=5)
    for _ in range(45):
        assert mixer.peek() == mixer.peek() == mixer.next_task() == reference.next_task()
    assert mixer.count == 45


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ({"a": 0.5, "b": 0.4}, "sum to 0.9, not 1"),
        ({"a": 1.0, "b": 0.0}, "above 0"),
        ({}, "no tasks"),
        ({"a": 1 / 97, "b": 1 / 89, "c": 1 - 1 / 97 - 1 / 89}, "blocks of"),
    ],
)
def test_shares_that_cannot_mix_exactly_are_one_line_errors(shares: dict[str, float], message: str) -> None:
    with pytest.raises(MixError, match=message) as info:
        block_counts(shares)
    assert "\n" not in str(info.value)


def pairs_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"Question number {i}?", "response": f"Answer {i}."} for i in range(n)]
    rows[7] = {"prompt": "", "response": "an empty prompt"}  # a source reject
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def conversations_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "conversations.jsonl"
    lines = []
    for i in range(n):
        messages = [
            {"role": "user", "content": f"First question {i}?"},
            {"role": "assistant", "content": "First answer."},
            {"role": "user", "content": "And a second one?"},
            {"role": "assistant", "content": "Second answer."},
        ]
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n")
    return path


def mix_recipe(tmp_path: Path, limit: int | None, pairs: int = 400, conversations: int = 60) -> Recipe:
    rows, convs = str(pairs_file(tmp_path, pairs)), str(conversations_file(tmp_path, conversations))
    conv_source = {"kind": "files", "paths": [convs], "messages_column": "messages"}
    return Recipe.model_validate(
        {
            "name": "mix",
            "seed": 7,
            "limit": limit,
            "source": {"kind": "files", "paths": [rows]},
            "tasks": {
                "instruction": {"share": 0.6},
                "transcription": {"share": 0.2},
                "noise_refusal": {"share": 0.1, "kinds": {"white": 1, "tokens": 1}},
                "multi_turn": {"share": 0.05, "source": conv_source},
                "text_only": {"share": 0.05, "source": conv_source},
            },
        }
    )


def fake_stages(sample: Sample) -> Sample:
    """Stand-in for the stages: spoken turns get codes; about a fifth of the speech (more of the
    multi-turn conversations) is rejected, by a draw on the id (so the same sample always fares alike)."""
    for n, turn in enumerate(sample.turns):
        if not sample.kept or turn.origin is None or turn.origin == "tokens":
            continue
        turn.tokens = np.arange(5, dtype=np.int16)
        if unit_draw("fake-reject", turn.key) < 0.2:
            sample.drop("fake", "rejected", turn=n)
    return sample


def run_plan(recipe: Recipe, window: int) -> tuple[list[tuple[str, str]], list[str], MixPlan, int]:
    """Feed the plan with ``window`` samples in flight (as an executor with that many would), return
    what was written (id, task), the reject ids in writing order, the plan and its largest backlog."""
    plan = MixPlan(recipe, make_tasks(recipe))
    context = FormatContext(recipe.seed, 500)
    written: list[tuple[str, str]] = []
    rejects: list[str] = []

    def write_kept(sample: Sample, task: Task) -> bool:
        task.format(sample, context)
        written.append((sample.id, sample.task))
        context.record(sample)
        return True

    feed, pending, backlog = plan.feed(), deque(), 0
    while True:
        while len(pending) < window and (item := next(feed, None)) is not None:
            pending.append(item)
        if not pending:
            break
        plan.arrive(fake_stages(pending.popleft()))
        plan.drain(write_kept, rejects.append)
        backlog = max(backlog, max(len(s.queue) for s in plan.streams))
        if plan.done:
            break
    if not plan.done:
        plan.finish(write_kept, rejects.append)
    return written, [s.id for s in rejects], plan, backlog


def test_what_is_written_does_not_depend_on_how_far_ahead_samples_are_processed(tmp_path: Path) -> None:
    recipe = mix_recipe(tmp_path, limit=300)
    reference = run_plan(recipe, 1)
    for window in (4, 33):
        written, rejects, _, _ = run_plan(recipe, window)
        assert (written, rejects) == reference[:2]
    written, rejects, plan, _ = reference
    assert plan.ended == "limit" and len(written) + len(rejects) == 300
    tasks = [task for _, task in written]
    for start in range(0, len(tasks) - 19, 20):  # every complete block of 20 holds 12/4/2/1/1
        assert Counter(tasks[start : start + 20]) == {
            "instruction": 12,
            "transcription": 4,
            "noise_refusal": 2,
            "multi_turn": 1,
            "text_only": 1,
        }
    ids = [i for i, _ in written] + rejects
    assert len(ids) == len(set(ids))  # no sample twice
    assert "pairs-000007" in rejects  # the empty prompt was accounted for


def test_the_backlog_stays_bounded_when_tasks_are_rejected_at_different_rates(tmp_path: Path) -> None:
    recipe = mix_recipe(tmp_path, limit=None, pairs=2000, conversations=400)
    written, rejects, plan, backlog = run_plan(recipe, 16)
    assert len(written) > 600 and plan.ended.endswith("no more samples")
    assert backlog < 60  # demand-fed: no stream's queue grows with the build


def test_the_build_stops_when_the_stream_the_mix_needs_runs_out(tmp_path: Path) -> None:
    recipe = mix_recipe(tmp_path, limit=None, conversations=6)
    written, rejects, plan, _ = run_plan(recipe, 8)
    counts = Counter(task for _, task in written)
    assert plan.ended in {"multi_turn: no more samples", "text_only: no more samples"}
    assert counts["multi_turn"] + counts["text_only"] <= 6
    assert counts["instruction"] <= 12 * (counts["multi_turn"] + 1)  # the mix did not run on without it


def test_streams_of_one_source_split_its_rows(tmp_path: Path) -> None:
    recipe = mix_recipe(tmp_path, limit=None, conversations=40)
    plan = MixPlan(recipe, make_tasks(recipe))
    multi, text = plan.stream_of["multi_turn"], plan.stream_of["text_only"]
    assert multi is not text and plan.stream_of["instruction"] is plan.stream_of["transcription"]
    multi_ids, text_ids = {s.id for s in multi.items}, {s.id for s in text.items}
    assert not multi_ids & text_ids and len(multi_ids | text_ids) == 40
    assert min(len(multi_ids), len(text_ids)) >= 10  # split by the (equal) shares


def test_transcription_formatting_uses_the_spoken_text_and_a_request(tmp_path: Path) -> None:
    from dataengine.formatting import TRANSCRIPTION_REQUESTS

    recipe = mix_recipe(tmp_path, limit=None)
    tasks = make_tasks(recipe)
    sample = next(
        s for s in tasks["transcription"].samples(iter([Sample.pair("x", 0, "Hello there?", "Hi.")]))
    )
    sample.turns[0].tokens = np.array([1, 2], dtype=np.int16)
    tasks["transcription"].format(sample, FormatContext(7, 500))
    user, assistant = sample.turns
    assert user.prefix in TRANSCRIPTION_REQUESTS and assistant.text == "Hello there?"
    assert sample.task == "transcription"


def test_long_prompts_join_distinct_prompts_and_account_for_every_row() -> None:
    import re

    from dataengine.recipe import LongPrompts
    from dataengine.tasks.long_prompts import join_pairs

    prompts = ["Who are you?", "Who are you?", "What is AI?", "Who are you", "Tell me a joke.", "Why?"] * 5
    rows = [Sample.pair(f"r{i}", i, p, f"a{i}") for i, p in enumerate(prompts)]
    rows[4].drop("source", "bad_row")
    out = list(join_pairs(iter(rows), LongPrompts(min_s=2.0, max_s=3.0), seed=1, chars_per_second=14.0))
    joined = [s for s in out if "-j" in s.id]
    assert joined and any(not s.kept for s in out)
    rows_used = sum(int(s.id.rsplit("-j", 1)[1]) for s in joined) + len(out) - len(joined)
    assert rows_used == len(rows)  # every row in exactly one sample: joined, single or rejected
    for sample in joined:
        said = [p.rstrip(".!?").lower() for p in re.split(r"(?<=[.!?]) ", sample.prompt)]
        assert len(said) == len(set(said)) == int(sample.id.rsplit("-j", 1)[1]), sample.prompt  # none twice
