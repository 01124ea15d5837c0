from pathlib import Path

import pytest

from dataengine.recipe import FilesSource, RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_demo_recipe_loads() -> None:
    recipe = load_recipe(ROOT / "recipes" / "demo.yaml")
    assert recipe.name == "demo"
    assert recipe.tokenizer.max_sound_tokens == 500
    assert [v.backend for v in recipe.tts.voices] == ["piper"] * 3 + ["espeak"] * 2 + ["kokoro"] * 4
    assert {n: t.share for n, t in recipe.tasks.enabled().items()} == {
        "instruction": 0.7,
        "transcription": 0.3,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nsede: 1\n", "sede: unknown key"),
        ("name: x\nseed: abc\n", "seed: Input should be a valid integer"),
        ("seed: 1\n", "name: required key is missing"),
        ("name: x\ntasks: {instruction: {share: 1.5}}\n", "tasks.instruction.share"),
        ("name: x\ntasks: {instruction: {share: 0.5}, transcription: {share: 0.3}}\n", "sum to 0.8, not 1"),
        ("name: x\ntasks: {speaking: {share: 1}}\n", "tasks.speaking: unknown task (tasks: instruction,"),
        ("name: x\ntasks: {noise_refusal: {share: 1, kinds: {hum: 1}}}\n", "unknown noise kind 'hum'"),
        (
            "name: x\ntasks: {instruction: {share: 0.5},\n"
            "  multi_turn: {share: 0.5, source: {kind: hf, name: a}}}\n",
            "tasks.multi_turn: source needs messages_column",
        ),
        ("name: x\ntts: {voices: [{backend: festival}]}\n", "unknown TTS backend 'festival'"),
        ("name: x\naudio_filters: {min_duration_s: 5, max_duration_s: 2}\n", "min_duration_s must be below"),
        ("name: x\ntts: {voices: [{backend: nope}]}\n", "tts.voices.0.backend"),
        ("name: x\nsource: {kind: files, paths: [missing.jsonl]}\n", "source.paths.0: file not found"),
        ("name: x\ntokenizer: {checkpoint: nothere.pt}\n", "tokenizer.checkpoint: file not found"),
        ("- just a list\n", "a recipe must be a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_recipes_give_one_line_naming_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert message.startswith(f"{path}: ")  # the recipe file, not its folder


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_relative_source_paths_resolve_against_recipe_folder(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"prompt": "hi", "response": "hello"}\n')
    recipe = load_recipe(write(tmp_path, "name: x\nsource: {kind: files, paths: [rows.jsonl]}\n"))
    assert isinstance(recipe.source, FilesSource)
    assert recipe.source.paths == [tmp_path / "rows.jsonl"]


def test_overrides_revalidate(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, "name: x\n"))
    assert recipe.with_overrides(limit=5).limit == 5
    with pytest.raises(ValueError):
        recipe.with_overrides(limit=0)
