"""Noise turns: seeded clips of every kind (synthetic and packaged recordings), refusal answers, and
random sound-token sequences whose lengths follow the build's spoken prompts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dataengine.audio.pcm import quantize_pcm16
from dataengine.noise import clips
from dataengine.noise.clips import make_clip, missing_packages, recordings
from dataengine.noise.stage import NoiseStage, clip_seconds
from dataengine.recipe import NOISE_KINDS, NoiseRefusalTask, Recipe, RecipeError
from dataengine.sample import ASSISTANT, NOISE, TOKENS, TTS, USER, Sample, Turn
from dataengine.stage import StageStats
from dataengine.tasks import make_tasks
from dataengine.tasks.base import FormatContext
from dataengine.tasks.refusals import REFUSALS

AUDIO_KINDS = [k for k in NOISE_KINDS if k != "tokens"]


@pytest.mark.parametrize("kind", AUDIO_KINDS)
def test_every_kind_makes_a_seeded_clip_of_the_asked_length(kind: str) -> None:
    clip = make_clip(kind, 2.5, 0, "noise-000001")
    assert clip.dtype == np.float32 and len(clip) == 40_000 and np.isfinite(clip).all()
    assert np.array_equal(clip, quantize_pcm16(clip))  # on the 16-bit grid the shards store
    assert np.array_equal(clip, make_clip(kind, 2.5, 0, "noise-000001"))
    assert not np.array_equal(clip, make_clip(kind, 2.5, 0, "noise-000002"))
    rms_db = 20 * np.log10(np.sqrt(np.mean(clip.astype(np.float64) ** 2)) + 1e-12)
    assert (-90 < rms_db < -60) if kind == "silence" else (-50 < rms_db < -10), rms_db


def test_long_clips_of_short_recordings_are_filled() -> None:
    clip = make_clip("sounds", 17.0, 3, "k")
    assert len(clip) == 17 * 16_000
    quarters = np.array_split(np.abs(clip), 4)
    assert all(q.max() > 1e-3 for q in quarters)  # sounds all along, not one sound then nothing


def test_recorded_kinds_come_from_the_installed_packages() -> None:
    assert missing_packages(list(NOISE_KINDS)) == []  # make install puts them in place
    assert len(recordings("music")) == 5 and len(recordings("room_tone")) >= 3
    assert not any(p.name.startswith("audio-channel-") for p in recordings("sounds"))  # spoken words


def test_a_missing_package_is_a_one_line_recipe_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(clips.RECORDED, "music", ("asterisk-moh-opsound-g722", tmp_path / "none", "*.g722"))
    clips.recordings.cache_clear()
    try:
        recipe = Recipe.model_validate({"name": "n", "tasks": {"noise_refusal": {"share": 1.0}}})
        with pytest.raises(RecipeError, match=r"apt-get install -y asterisk-moh-opsound-g722$"):
            make_tasks(recipe)["noise_refusal"].preflight()
    finally:
        clips.recordings.cache_clear()


def test_noise_samples_draw_kinds_answers_and_lengths() -> None:
    recipe = Recipe.model_validate(
        {
            "name": "n",
            "seed": 4,
            "tasks": {"noise_refusal": {"share": 1.0, "kinds": {"pink": 1, "music": 1, "tokens": 2}}},
        }
    )
    task = make_tasks(recipe)["noise_refusal"]
    samples = [s for s, _ in zip(task.samples(None), range(400), strict=False)]
    assert [s.id for s in samples[:2]] == ["noise-000000", "noise-000001"]
    kinds = Counter(s.turns[0].voice for s in samples)
    assert set(kinds) == {"noise:pink", "noise:music", "noise:tokens"}
    assert kinds["noise:tokens"] > 1.5 * kinds["noise:pink"]  # weight 2 against 1
    assert all(
        s.turns[0].origin == (TOKENS if s.turns[0].voice == "noise:tokens" else NOISE) for s in samples
    )
    answers = Counter(s.turns[1].text for s in samples)
    assert set(answers) <= set(REFUSALS) and len(answers) > 25
    seconds = [clip_seconds(recipe.tasks.noise_refusal, 4, s.id) for s in samples]
    assert (
        1.0 <= min(seconds) and max(seconds) <= 18.0 and np.median(seconds) < 6.0
    )  # log-uniform: long ones too
    assert max(seconds) > 12.0


def test_the_refusal_list_is_varied_and_replaceable() -> None:
    assert len(REFUSALS) >= 30 and len(set(REFUSALS)) == len(REFUSALS)
    assert len({r.split()[0] for r in REFUSALS}) > 10  # not one template
    recipe = Recipe.model_validate(
        {"name": "n", "tasks": {"noise_refusal": {"share": 1.0, "answers": ["Pardon?"]}}}
    )
    task = make_tasks(recipe)["noise_refusal"]
    assert {s.turns[1].text for s, _ in zip(task.samples(None), range(20), strict=False)} == {"Pardon?"}
    with pytest.raises(ValueError, match="answers must not be empty"):
        NoiseRefusalTask(share=1.0, answers=["  "])


def test_token_noise_lengths_follow_the_spoken_prompts_written_before() -> None:
    recipe = Recipe.model_validate(
        {"name": "n", "tasks": {"noise_refusal": {"share": 1.0, "kinds": {"tokens": 1}}}}
    )
    task = make_tasks(recipe)["noise_refusal"]
    context = FormatContext(0, 500)
    first = next(task.samples(None))
    task.format(first, context)
    assert 25 <= len(first.turns[0].tokens) <= 450  # no prompt written yet: the clip-length range
    prompt = Sample(
        "p", 0, turns=[Turn(USER, "x", origin=TTS, tokens=np.zeros(40, np.int16)), Turn(ASSISTANT, "y")]
    )
    for _ in range(3):
        context.record(prompt)
    context.record(Sample("q", 1, turns=[Turn(USER, "x", origin=TTS, tokens=np.zeros(90, np.int16))]))
    lengths = []
    for sample, _ in zip(task.samples(None), range(200), strict=False):
        task.format(sample, context)
        tokens = sample.turns[0].tokens
        assert tokens.dtype == np.int16 and 0 <= tokens.min() and tokens.max() < 512
        lengths.append(len(tokens))
    counts = Counter(lengths)
    assert set(counts) == {40, 90} and counts[40] > 2 * counts[90]  # 3 prompts of 40 tokens, 1 of 90


def test_the_noise_stage_fills_noise_turns_only() -> None:
    config = NoiseRefusalTask(share=1.0)
    stage = NoiseStage(config, seed=2)
    noise = Sample(
        "noise-1",
        0,
        turns=[Turn(USER, "", origin=NOISE, key="noise-1", voice="noise:brown"), Turn(ASSISTANT, "No.")],
    )
    speech = Sample("s", 1, turns=[Turn(USER, "Hi?", origin=TTS, key="s"), Turn(ASSISTANT, "Hello.")])
    stats = StageStats("noise")
    stage([noise, speech], stats)
    assert noise.kept and abs(noise.duration_s - clip_seconds(config, 2, "noise-1")) < 1e-3
    assert speech.turns[0].audio is None and stats.seen == 1
