"""Bad input and faults around ``dataengine build`` (issue 12): what is refused up front, in one line,
and what is never deleted. Each test failed before its fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from dataengine.cli import main
from dataengine.executors import LocalExecutor
from dataengine.pipeline import (
    OWNER_MARK,
    STAGING,
    STAGING_MARK,
    OutputError,
    prepare_output,
    publish_output,
)
from dataengine.recipe import RecipeError, load_recipe
from dataengine.sample import Sample, Unit
from dataengine.stage import StageError, TurnStage

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "recipes" / "demo.yaml")


def build_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["build", *args, "--no-progress"])
    return result.exit_code, result.output


def one_error_line(output: str) -> str:
    """The output's only line, which must be an ``Error:`` line (no traceback, no log lines)."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- 1. an --out folder is replaced only when a build marked it as its own ------------------------------


def test_user_folder_with_build_output_names_is_never_wiped(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    (out / "shards").mkdir(parents=True)
    (out / "manifest").mkdir()
    (out / "plots").mkdir()
    (out / "recipe.yaml").write_text("name: mine\nlimit: 1\n")
    (out / "README.md").write_text("# my notes\n")
    (out / "shards" / "data.tar").write_bytes(b"precious")
    before = tree(out)
    code, output = build_cli(str(out / "recipe.yaml"), "--out", str(out))
    assert code == 2
    assert "no dataengine build marked it as its own" in one_error_line(output)
    assert tree(out) == before


def test_staging_folder_not_made_by_the_tool_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_output(out)  # a build claimed it ...
    shutil.rmtree(out / STAGING)
    (out / STAGING).mkdir()  # ... but this .partial is the user's
    (out / STAGING / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not a staging folder made by dataengine"):
        prepare_output(out)
    assert (out / STAGING / "notes.txt").read_text() == "keep me"


def test_own_folders_are_still_replaced(tmp_path: Path) -> None:
    """A crash while replacing a build leaves no build.json; the ownership mark still lets the next build
    replace it. A marked staging folder is cleared; a pre-mark build (build.json alone) is adopted."""
    out = tmp_path / "out"
    staging = prepare_output(out)
    assert json.loads((out / OWNER_MARK).read_text())["owner"] == "dataengine"
    (staging / "manifest").mkdir()
    (staging / "manifest" / "samples.parquet").write_bytes(b"half")
    staging = prepare_output(out)  # interrupted build: its marked staging folder goes
    assert sorted(p.name for p in staging.iterdir()) == [STAGING_MARK]
    (staging / "build.json").write_text("{}")
    publish_output(staging, out)
    (out / "build.json").unlink()  # as a crash half-way through replacing it leaves the folder
    prepare_output(out)

    legacy = tmp_path / "legacy"
    (legacy / "shards").mkdir(parents=True)
    (legacy / "build.json").write_text(json.dumps({"dataengine_version": "0.1.0", "recipe": "x"}))
    prepare_output(legacy)
    assert (legacy / OWNER_MARK).is_file()


# --- 2. names stay inside build/ -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "../up", "a\\\\b"])
def test_recipe_name_must_be_a_plain_folder_name(tmp_path: Path, name: str) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f'name: "{name}"\n')
    with pytest.raises(RecipeError, match="name: must be a plain folder name"):
        load_recipe(recipe)


def test_name_dot_dot_leaves_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "README.md").write_text("mine")
    (tmp_path / "recipe.yaml").write_text('name: ".."\nlimit: 1\n')
    monkeypatch.chdir(tmp_path)  # the default output, build/<name>, would be this folder
    code, output = build_cli("recipe.yaml")
    assert code == 2 and "name: must be a plain folder name" in one_error_line(output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "recipe.yaml"]


# --- 7. errors that used to surface only when stages loaded ----------------------------------------------


def _offline(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    import datasets.config
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def _hf_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "hfdata"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"prompt": "hi there", "response": "hello"}\n')
    return folder


CASES = {
    "piper voice": ("tts: {voices: [{backend: piper, voice: nosuch}]}", "tts.voices.0: unknown Piper voice"),
    "espeak voice": ("tts: {voices: [{backend: espeak, voice: xx-nope}]}", "tts.voices.0: espeak-ng voice"),
    "corrupt checkpoint": ("tokenizer: {checkpoint: garbage.pt}", "tokenizer: "),
    "uncached checkpoint": ('tokenizer: {checkpoint: "someorg/somerepo:vq.model"}', "is not available"),
    "cuda without gpu": ("tokenizer: {device: cuda}", "sees no CUDA device"),
    "asr model path": ("asr: {model: nosuch-folder}", "asr.model: unknown ASR model"),
    "chatterbot category": ("source: {kind: chatterbot, categories: [nosuch]}", "source.categories: unknown"),
    "csv path": ("source: {kind: files, paths: [rows.csv]}", "source.paths.0: "),
    "not parquet": ("source: {kind: files, paths: [rows.parquet]}", "not a Parquet file"),
    "hf not offline": ("source: {kind: hf, name: someorg/somedataset}", "Couldn't reach"),
    "hf folder missing": ("source: {kind: hf, name: ./no-such-folder}", "source.name: ./no-such-folder"),
    "hf bad split": ("source: {kind: hf, name: hfdata, split: test}", "Bad split: test"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_setting_errors_are_one_line_exit_2_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    if case == "espeak voice" and shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    if case == "cuda without gpu":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    _offline(monkeypatch, tmp_path / "hf")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "rows.csv").write_text("prompt,response\nhi,hello\n")
    (tmp_path / "rows.parquet").write_text("prompt,response\nhi,hello\n")
    _hf_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    setting, expected = CASES[case]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nlimit: 2\n{setting}\n")
    out = tmp_path / "out"
    code, output = build_cli(str(recipe), "--out", str(out))
    assert code == 2, output
    line = one_error_line(output)
    assert line.startswith(f"Error: {recipe}: ") and expected in line
    assert not out.exists()  # refused before the output folder (or any sample) was touched


def test_a_model_that_fails_to_load_is_one_line_exit_2(tmp_path: Path) -> None:
    """Found only when the stage starts (the file exists but is no Whisper checkpoint)."""
    (tmp_path / "whisper.pt").write_bytes(b"not a checkpoint")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nlimit: 1\ntokenizer: {{whisper: {tmp_path / 'whisper.pt'}}}\n")
    result = CliRunner().invoke(
        main, ["build", str(recipe), "--out", str(tmp_path / "out"), "--no-progress", "--no-cache"]
    )
    assert result.exit_code == 2, result.output
    assert f"Error: {recipe}: tokenizer: cannot start: " in result.output
    assert "Traceback" not in result.output


class _BrokenStage(TurnStage):
    name = "broken"

    def setup(self) -> None:
        raise OSError("model file vanished")

    def process_turn(self, unit: Unit) -> None:  # pragma: no cover - never reached
        raise AssertionError("setup failed, nothing may run")


def test_a_stage_failing_in_a_worker_gives_its_reason_not_a_broken_pool() -> None:
    batches = [[Sample.pair(f"s{i}", i, "p", "r")] for i in range(3)]
    with pytest.raises(StageError, match="broken: cannot start: OSError: model file vanished"):
        list(LocalExecutor(2).map([_BrokenStage()], batches))


# --- 8. file-system errors are found up front ------------------------------------------------------------


@contextmanager
def not_root() -> Iterator[None]:
    """Permission bits apply to root only through a read-only mount; drop to ``nobody`` meanwhile."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A temporary folder that ``nobody`` may enter (pytest's own are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="dataengine-ro-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)


def _recipe(folder: Path) -> Path:
    recipe = folder / "r.yaml"
    recipe.write_text("name: r\nlimit: 1\n")
    recipe.chmod(0o644)
    return recipe


def test_cache_dir_that_is_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file")
    recipe, cache = str(_recipe(tmp_path)), str(tmp_path / "cache")
    code, output = build_cli(recipe, "--out", str(tmp_path / "out"), "--cache-dir", cache)
    assert code == 2 and "is a file, not a folder" in one_error_line(output)
    assert not (tmp_path / "out").exists()


def test_read_only_cache_is_one_line_exit_2_before_any_work(shared_dir: Path) -> None:
    cache, writable = shared_dir / "cache", shared_dir / "writable"
    cache.mkdir()
    cache.chmod(0o555)
    writable.mkdir()
    writable.chmod(0o777)
    recipe = str(_recipe(shared_dir))
    with not_root():
        code, output = build_cli(recipe, "--out", str(writable / "out"), "--cache-dir", str(cache))
    assert code == 2 and f"cache folder {cache}: not writable" in one_error_line(output)
    assert not (writable / "out").exists()


def test_read_only_out_is_one_line_exit_2(shared_dir: Path) -> None:
    parent = shared_dir / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    recipe = str(_recipe(shared_dir))
    with not_root():
        code, output = build_cli(recipe, "--out", str(parent / "out"), "--no-cache")
    assert code == 2 and "not writable" in one_error_line(output)
    assert not (parent / "out").exists()


# --- 12. a build that keeps nothing says so and exits non-zero -------------------------------------------


def test_empty_source_is_a_loud_exit_3(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsource: {kind: files, paths: [empty.jsonl]}\n")
    code, output = build_cli(str(recipe), "--out", str(tmp_path / "out"))
    assert code == 3
    assert "Error: the build kept no sample: the source gave no rows" in output
    assert (tmp_path / "out" / "build.json").is_file()  # written: its (empty) manifest can be queried


def test_everything_rejected_is_a_loud_exit_3_naming_the_reason(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nlimit: 3\ntokenizer: {max_sound_tokens: 1}\n")
    code, output = build_cli(str(recipe), "--out", str(tmp_path / "out"))
    assert code == 3
    assert "the build kept no sample: all 3 rejected (text_filters/too_long_estimate 3)" in output


# --- 15. strict types, no duplicate keys -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nseed: true\n", "seed: Input should be a valid integer (got True)"),
        ("name: x\nseed: 1.5\n", "seed: Input should be a valid integer"),
        ("name: x\nshards: {keep_audio: 1}\n", "shards.keep_audio: Input should be a valid boolean"),
        ("name: x\nseed: 1\nseed: 2\n", "duplicate key 'seed' (line 3)"),
        ("name: x\ntts:\n  voices:\n    - voice: a\n      voice: b\n", "duplicate key 'voice' (line 5)"),
    ],
)
def test_recipe_types_are_strict_and_keys_unique(tmp_path: Path, text: str, expected: str) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    assert str(info.value).startswith(f"{recipe}: {expected}")


def test_ints_still_count_as_floats(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\ntasks: {instruction: {share: 1}}\naudio_filters: {max_duration_s: 20}\n")
    assert load_recipe(recipe).tasks.instruction.share == 1.0


# --- 20. Ctrl-C is one line, exit 130 --------------------------------------------------------------------

_INTERRUPT_AT_IMPORT = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (& jobs inherit it ignored)
class SigintOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would, while that module is being imported
        return None
sys.meta_path.insert(0, SigintOnImport())
sys.argv = ["dataengine", *{args!r}]
from dataengine.__main__ import run
run()
"""


@pytest.mark.parametrize(
    ("module", "where"),
    [("pydantic", "while the commands load"), ("dataengine.pipeline", "while the build command starts")],
)
def test_ctrl_c_is_one_line_exit_130(tmp_path: Path, module: str, where: str) -> None:
    args = ["build", str(_recipe(tmp_path)), "--out", str(tmp_path / "out"), "--no-progress"]
    code = _INTERRUPT_AT_IMPORT.format(module=module, args=args)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 128 + signal.SIGINT, (where, done.stderr)
    assert done.stderr.strip() == "interrupted (Ctrl-C)", (where, done.stderr)
