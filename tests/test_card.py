"""The dataset card: rendered from the manifest and recipe, with PNG plots, loadable by ``datasets``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from build_facts import ManifestFacts
from click.testing import CliRunner

from dataengine.cli import main
from dataengine.publish.card import manifest_stats


@pytest.fixture()
def carded(small_build_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "build"
    shutil.copytree(small_build_dir, out)
    result = CliRunner().invoke(main, ["card", str(out), "--repo", "org/small", "--version", "v1.2.3"])
    assert result.exit_code == 0, result.output
    return out


def table_rows(text: str, header: str) -> list[str]:
    """The body rows of the Markdown table whose header line is ``header``."""
    lines = text.splitlines()
    start = lines.index(header) + 2  # past the header and its |---| line
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_card_content_matches_the_manifest(carded: Path, small_facts: ManifestFacts) -> None:
    text = (carded / "README.md").read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["configs"][0]["data_files"] == [{"split": "train", "path": "shards/train-*.tar"}]
    features = {f["name"]: f for f in header["dataset_info"]["features"]}
    assert features["flac"]["dtype"] == "binary" and features["tokens.npy"]["list"] == "int16"
    stats = manifest_stats(carded)
    assert stats["kept"] == small_facts.kept and f"**{small_facts.kept} samples**" in text
    # the task table holds exactly the counts a DuckDB query of the manifest gives, one row per task
    assert len(small_facts.tasks) == 2 and sum(small_facts.tasks.values()) == small_facts.kept
    want = [f"| {task} | {n} |" for task, n in sorted(small_facts.tasks.items())]
    assert table_rows(text, "| task | samples |") == want
    split_row = f"| train | {small_facts.kept} | {len(small_facts.shards)} |"
    assert table_rows(text, "| split | samples | shards |") == [split_row]
    assert "min_snr_db=10.0" in text and "`default`" in text  # thresholds and tokenizer checkpoint
    assert "BSD-3-Clause" in text and "CC0" in text and "GPL-3.0" in text and "MIT" in text
    assert 'load_dataset("org/small", revision="v1.2.3"' in text and "tune run" in text
    for name in ("duration_hist.png", "sound_tokens_hist.png", "reject_reasons.png"):
        png = carded / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"(plots/{name})" in text


def test_card_is_deterministic(carded: Path) -> None:
    before = {p.name: p.read_bytes() for p in (carded / "plots").iterdir()} | {
        "README.md": (carded / "README.md").read_bytes()
    }
    assert (
        CliRunner()
        .invoke(main, ["card", str(carded), "--repo", "org/small", "--version", "v1.2.3"])
        .exit_code
        == 0
    )
    after = {p.name: p.read_bytes() for p in (carded / "plots").iterdir()} | {
        "README.md": (carded / "README.md").read_bytes()
    }
    assert before == after


def test_load_dataset_from_a_local_folder(
    carded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_facts: ManifestFacts
) -> None:
    import datasets

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    ds = datasets.load_dataset(str(carded), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == small_facts.kept
    assert ds.features["flac"] == datasets.Value("binary")
    row = ds[0]
    assert row["json"]["id"] == small_facts.ids[0] and row["json"]["conversations"][0]["role"] == "user"
    assert len(row["tokens.npy"]) == row["json"]["n_sound_tokens"] and isinstance(row["flac"], bytes)


def test_card_on_a_folder_that_is_not_a_build(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["card", str(tmp_path)])
    assert result.exit_code == 2 and "not a dataengine build" in result.output
