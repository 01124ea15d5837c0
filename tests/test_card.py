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
    info = {i["config_name"]: i for i in header["dataset_info"]}
    features = {f["name"]: f for f in info["default"]["features"]}
    assert features["flac"]["dtype"] == "binary" and features["tokens.npy"]["list"] == "int16"
    stats = manifest_stats(carded)
    assert stats["kept"] == small_facts.kept and f"**{small_facts.kept} samples**" in text
    # the task table holds exactly the counts a DuckDB query of the manifest gives, one row per task
    assert len(small_facts.tasks) == 2 and sum(small_facts.tasks.values()) == small_facts.kept
    want = [[f"| {task}", str(n)] for task, n in sorted(small_facts.tasks.items())]
    task_header = next(line for line in text.splitlines() if line.startswith("| task | samples |"))
    rows = table_rows(text, task_header)
    assert [row.split(" | ")[:2] for row in rows] == want
    assert all(row.split(" | ")[2] == "2.0, 2" for row in rows)  # turns per conversation (mean, max)
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


@pytest.fixture()
def carded_rejecting(rejecting_build_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "rejecting"
    shutil.copytree(rejecting_build_dir, out)
    result = CliRunner().invoke(main, ["card", str(out), "--repo", "org/listen", "--version", "v0.1.0"])
    assert result.exit_code == 0, result.output
    return out


def test_card_plays_a_kept_and_a_rejected_example(carded_rejecting: Path) -> None:
    import duckdb
    import soundfile as sf

    text = (carded_rejecting / "README.md").read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    configs = {c["config_name"]: c["data_files"] for c in header["configs"]}
    assert configs["listen"] == configs["default"] == [{"split": "train", "path": "shards/train-*.tar"}]
    assert configs["rejected"] == [{"split": "train", "path": "rejected/*.tar"}]
    info = {i["config_name"]: {f["name"]: f for f in i["features"]} for i in header["dataset_info"]}
    assert info["default"]["flac"]["dtype"] == "binary"
    for config in ("listen", "rejected"):
        assert info[config]["flac"]["dtype"] == {"audio": {"sampling_rate": 16000, "decode": False}}
    manifest = carded_rejecting / "manifest"
    for status, table in (("kept", "samples"), ("rejected", "rejects")):
        url = f"https://huggingface.co/datasets/org/listen/resolve/v0.1.0/examples/{status}.flac"
        assert f'<audio controls preload="none" src="{url}"></audio>' in text
        assert f"[examples/{status}.flac](examples/{status}.flac)" in text
        why_sql, audio_only = (
            ("stage || '/' || reason", "WHERE shard IS NOT NULL") if table == "rejects" else ("NULL", "")
        )
        first, duration, why = duckdb.sql(
            f"SELECT id, duration_s, {why_sql} FROM '{manifest}/{table}.parquet' {audio_only} "
            "ORDER BY index LIMIT 1"
        ).fetchall()[0]
        assert f"`{first}`" in text
        assert abs(sf.info(str(carded_rejecting / "examples" / f"{status}.flac")).duration - duration) < 1e-3
        if status == "rejected":
            assert f"rejected by `{why}`" in text


def test_load_dataset_with_the_viewer_configs_present(
    carded_rejecting: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default config still loads without an audio decoder; the viewer's configs resolve to the
    shards and the rejected audio, with ``flac`` as ``Audio(decode=False)``."""
    import datasets
    import duckdb

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    kept, rejected = duckdb.sql(
        f"SELECT (SELECT count(*) FROM '{carded_rejecting}/manifest/samples.parquet'), "
        f"(SELECT count(*) FROM '{carded_rejecting}/manifest/rejects.parquet' WHERE shard IS NOT NULL)"
    ).fetchall()[0]
    ds = datasets.load_dataset(str(carded_rejecting), split="train", cache_dir=str(tmp_path / "c"))
    assert len(ds) == kept and isinstance(ds[0]["flac"], bytes)
    for config, files in (("listen", "shards"), ("rejected", "rejected")):
        builder = datasets.load_dataset_builder(str(carded_rejecting), config, cache_dir=str(tmp_path / "c"))
        assert builder.info.features["flac"] == datasets.Audio(sampling_rate=16000, decode=False)
        paths = builder.config.data_files["train"]
        assert paths and all(f"/{files}/" in p for p in paths)
    assert rejected > 0 and len(list((carded_rejecting / "rejected").glob("*.tar"))) >= 1


def test_webdataset_audio_needs_torchcodec_even_with_decode_false(rejecting_build_dir: Path) -> None:
    """Why ``default`` keeps ``flac`` as bytes: declared as Audio, even with decode=False, the WebDataset
    loader encodes each example through torchcodec, so without it load_dataset fails."""
    import importlib.util

    import datasets

    if importlib.util.find_spec("torchcodec") is not None:
        pytest.skip("torchcodec is installed here, so the Audio configs load too")
    from dataengine.publish.card import hf_features, manifest_stats

    features = hf_features(manifest_stats(rejecting_build_dir)["metric_names"], keep_audio=True)
    features["flac"] = datasets.Audio(decode=False)
    tars = sorted(str(p) for p in (rejecting_build_dir / "shards").glob("*.tar"))
    stream = datasets.load_dataset(
        "webdataset", data_files={"train": tars}, features=features, streaming=True
    )
    with pytest.raises(ImportError, match="torchcodec"):
        next(iter(stream["train"]))
