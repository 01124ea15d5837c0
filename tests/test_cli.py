import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dataengine.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dataengine.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_bad_recipe_is_one_line_exit_2_without_traceback(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("name: x\nseed: 1\nshards: {max_sampels: 3}\n")
    result = run("build", str(recipe), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"Error: {recipe}: shards.max_sampels: unknown key"
    assert not (tmp_path / "out").exists()


def test_missing_recipe_and_bad_option_exit_2(tmp_path: Path) -> None:
    assert run("build", str(tmp_path / "nope.yaml")).returncode == 2
    assert run("build", "recipes/demo.yaml", "--workers", "0").returncode == 2


def test_out_folder_with_foreign_files_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["build", "recipes/demo.yaml", "--out", str(out), "--limit", "1"])
    assert result.exit_code == 2
    assert "not a dataengine build (precious.txt)" in result.output
    assert (out / "precious.txt").read_text() == "keep me"


def test_query_and_inspect(small_build_dir: Path) -> None:
    runner = CliRunner()
    sql = "select task, count(*) as n from samples group by task order by task"
    result = runner.invoke(main, ["query", str(small_build_dir), sql])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["task", "n"] and any(line.startswith("instruction") for line in lines[2:])

    result = runner.invoke(main, ["query", str(small_build_dir), "select id, reason from rejects", "--json"])
    assert result.exit_code == 0
    for line in result.output.splitlines():
        assert set(json.loads(line)) == {"id", "reason"}

    result = runner.invoke(main, ["query", str(small_build_dir), "select nope from samples"])
    assert result.exit_code == 2 and "nope" in result.output

    result = runner.invoke(main, ["inspect", str(small_build_dir)])
    assert result.exit_code == 0, result.output
    assert "kept" in result.output and "n_sound_tokens (tokens): min" in result.output
    assert "voices:" in result.output and "piper:joe-us@0.85" in result.output


def test_inspect_on_a_non_build_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["inspect", str(tmp_path)])
    assert result.exit_code == 2 and "not a dataengine build" in result.output


def test_tokenizer_info_reports_the_embedded_codebook() -> None:
    result = CliRunner().invoke(main, ["tokenizer", "info"])
    assert result.exit_code == 0, result.output
    assert "codes: 512" in result.output and "tokens/s: 25" in result.output
