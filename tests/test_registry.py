"""The stage registry: the stage list, the manifest columns, audio-check and the stage-order check all
come from what each stage declares; a new stage is one class plus its registration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from dataengine.audio.asr import ASR_METRIC_NAMES
from dataengine.audio.filters import AUDIO_METRIC_NAMES, AUDIO_REJECT_REASONS
from dataengine.recipe import Recipe, RecipeError, load_recipe, recipe_model
from dataengine.registry import (
    build_stages,
    check_order,
    metric_names,
    register_stage,
    reject_reasons,
    stage_classes,
    unregister_stage,
)
from dataengine.sample import TTS, Unit
from dataengine.stage import TurnStage
from dataengine.writers.manifest import ManifestWriter


def test_the_manifest_columns_are_every_metric_the_stages_declare(tmp_path: Path) -> None:
    names = metric_names()
    assert names == ["est_sound_tokens", *AUDIO_METRIC_NAMES, *ASR_METRIC_NAMES, "n_sound_tokens"]
    writer = ManifestWriter(tmp_path, names)
    assert "duration_s" not in writer.sample_metrics and "n_sound_tokens" not in writer.sample_metrics
    assert writer.reject_metrics[-1] == "n_sound_tokens"  # a reject row has no count column of its own
    assert reject_reasons()["audio_filters"] == AUDIO_REJECT_REASONS
    assert reject_reasons()["tokenizer"] == ("too_many_sound_tokens",)


def test_stages_follow_the_recipe_and_handle_their_origins() -> None:
    plain = [s.name for s in build_stages(Recipe(name="t"))]
    assert plain == ["text_filters", "tts", "audio_filters", "tokenizer"]  # no ASR, no noise task
    noisy = Recipe.model_validate(
        {
            "name": "t",
            "asr": {"model": "tiny.en"},
            "tasks": {"instruction": {"share": 0.5}, "noise_refusal": {"share": 0.5}},
        }
    )
    stages = {s.name: s for s in build_stages(noisy)}
    assert list(stages) == ["text_filters", "tts", "noise", "audio_filters", "asr", "tokenizer"]
    assert [n for n, s in stages.items() if "noise" in s.origins] == [
        "noise",
        "tokenizer",
    ]  # no speech filters
    assert all("tokens" not in s.origins for s in stages.values())  # drawn tokens need no stage


class Echo(TurnStage):
    """A plug-in stage: one file, one registration. It reads the tokens and measures their count."""

    name = "echo"
    section = "echo"
    origins = (TTS,)
    metrics = ("echo_tokens",)
    reject_reasons = ("echo_empty",)
    reads = ("tokens",)

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        min_tokens: int = 1

    config_model = Config

    def __init__(self, config: Config) -> None:
        self.config = config

    def process_turn(self, unit: Unit) -> None:
        count = 0 if unit.turn.tokens is None else len(unit.turn.tokens)
        unit.turn.metrics["echo_tokens"] = float(count)
        if count < self.config.min_tokens:
            unit.drop(self.name, "echo_empty", float(count))


@pytest.fixture
def echo_after(request: pytest.FixtureRequest) -> Iterator[None]:
    register_stage(Echo, after=request.param)
    yield
    unregister_stage("echo")


@pytest.mark.parametrize("echo_after", ["tokenizer"], indirect=True)
def test_a_registered_stage_gets_its_recipe_section_and_columns(echo_after: None, tmp_path: Path) -> None:
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("name: r\necho: {min_tokens: 3}\n")
    recipe = load_recipe(recipe_file)
    assert recipe.section("echo").min_tokens == 3 and "echo:" in recipe.dump_yaml()
    assert [s.name for s in build_stages(recipe)][-2:] == ["tokenizer", "echo"]
    assert metric_names()[-1] == "echo_tokens" and "echo_empty" in reject_reasons()["echo"]
    recipe_file.write_text("name: r\necho: {min_tokenz: 3}\n")
    with pytest.raises(RecipeError, match="echo.min_tokenz: unknown key"):
        load_recipe(recipe_file)


@pytest.mark.parametrize("echo_after", ["tts"], indirect=True)
def test_a_stage_placed_before_what_it_reads_is_a_one_line_error(echo_after: None) -> None:
    recipe = recipe_model().model_validate({"name": "r"})
    with pytest.raises(RecipeError) as info:
        build_stages(recipe)
    message = str(info.value)
    assert "stage 'echo' reads 'tokens' of tts turns, which no stage before it writes" in message
    assert "\n" not in message


def test_without_the_registration_its_section_is_unknown(tmp_path: Path) -> None:
    assert "echo" not in [cls.name for cls in stage_classes()]
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("name: r\necho: {min_tokens: 3}\n")
    with pytest.raises(RecipeError, match="echo: unknown key"):
        load_recipe(recipe_file)


def test_check_order_only_asks_for_the_origins_the_tasks_make() -> None:
    stages = build_stages(Recipe(name="t"))
    check_order(stages, ("tts",))
    with pytest.raises(RecipeError, match="stage 'tokenizer' reads 'audio' of noise turns"):
        check_order(stages, ("tts", "noise"))  # a noise task without the noise stage


def test_audio_check_runs_the_stages_that_handle_recordings() -> None:
    from dataengine.audio.check import AudioChecker

    assert [s.name for s in AudioChecker(Recipe(name="t")).stages] == ["audio_filters", "asr", "tokenizer"]
    assert [s.name for s in AudioChecker(Recipe(name="t"), asr=False).stages] == [
        "audio_filters",
        "tokenizer",
    ]


def test_recording_turns_get_their_audio_from_the_decode_stage(tmp_path: Path) -> None:
    """A recordings build runs ``decode`` first (the workers read the files); without it the filters
    would find no audio on a recording turn, and check_order says so in one line."""
    (tmp_path / "a.wav").write_bytes(b"")
    recipe = Recipe.model_validate(
        {
            "name": "r",
            "source": {"kind": "recordings", "path": str(tmp_path)},
            "tasks": {"pretrain": {"share": 1}},
        }
    )
    stages = build_stages(recipe)
    assert stages[0].name == "decode" and not stages[0].cacheable
    with pytest.raises(RecipeError, match="stage 'audio_filters' reads 'audio' of recording turns"):
        check_order(stages[1:], ("recording",))
    assert "decode" not in [s.name for s in build_stages(Recipe(name="t"))]  # synthetic builds: unchanged
