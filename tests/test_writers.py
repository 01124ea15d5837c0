import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from sample_fixtures import spoken_pair

from dataengine.manifest import ManifestError, run_query
from dataengine.sample import Sample
from dataengine.writers.manifest import ManifestWriter
from dataengine.writers.members import members_digest, sample_members
from dataengine.writers.shards import ShardWriter


def make_sample(i: int, seconds: float = 0.5) -> Sample:
    rng = np.random.default_rng(i)
    sample = spoken_pair(f"s-{i:03d}", i, f"prompt {i}", f"response {i}")
    turn = sample.turns[0]
    turn.voice = "v"
    turn.audio = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
    turn.tokens = rng.integers(0, 512, size=int(25 * seconds)).astype(np.int16)
    turn.metrics = {"snr_db": 20.123456, "duration_s": seconds}
    sample.task = "instruction"
    return sample


def write_shards(folder: Path, n: int, max_samples: int, max_bytes: int) -> list[str]:
    writer = ShardWriter(folder, "train", max_samples, max_bytes)
    names = [writer.add(s.id, sample_members(s, keep_audio=True)) for s in map(make_sample, range(n))]
    assert writer.close() == sorted(set(names))
    return names


def test_shards_roll_over_by_count_and_are_complete_tar_files(tmp_path: Path) -> None:
    names = write_shards(tmp_path, 7, max_samples=3, max_bytes=10**9)
    assert names == ["train-000000.tar"] * 3 + ["train-000001.tar"] * 3 + ["train-000002.tar"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "train-000000.tar",
        "train-000001.tar",
        "train-000002.tar",
    ]
    with tarfile.open(tmp_path / "train-000000.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members[:3]] == ["s-000.flac", "s-000.json", "s-000.tokens.npy"]
    assert all(m.mtime == 0 and m.uname == "" and m.mode == 0o444 for m in members)


def test_shards_roll_over_by_bytes(tmp_path: Path) -> None:
    names = write_shards(tmp_path, 6, max_samples=100, max_bytes=40_000)
    assert len(set(names)) > 1
    for path in tmp_path.glob("*.tar"):
        assert path.stat().st_size <= 40_000 + 10_240 + 20_000  # tar end blocks + one oversized sample


def test_shards_are_byte_deterministic(tmp_path: Path) -> None:
    write_shards(tmp_path / "a", 5, 2, 10**9)
    write_shards(tmp_path / "b", 5, 2, 10**9)
    for path in (tmp_path / "a").glob("*.tar"):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_webdataset_reads_back_what_was_written(tmp_path: Path) -> None:
    write_shards(tmp_path, 4, 10, 10**9)
    dataset = wds.WebDataset(str(tmp_path / "train-000000.tar"), shardshuffle=False).decode()
    rows = list(dataset)
    assert [r["__key__"] for r in rows] == [f"s-{i:03d}" for i in range(4)]
    record = rows[1]["json"]
    assert record["speech"][0]["text"] == "prompt 1" and record["conversations"][1]["content"] == "response 1"
    assert rows[1]["tokens.npy"].tolist() == make_sample(1).turns[0].tokens.tolist()
    assert record["speech"][0]["metrics"]["snr_db"] == 20.1235


def test_digest_covers_every_member() -> None:
    members = sample_members(make_sample(0), keep_audio=True)
    digest = members_digest(members)
    assert digest == members_digest(dict(reversed(members.items())))
    changed = dict(members, json=members["json"] + b" ")
    assert members_digest(changed) != digest
    assert len(digest) == 64 and digest != hashlib.sha256(b"").hexdigest()


def test_manifest_round_trip_and_read_only_queries(tmp_path: Path) -> None:
    writer = ManifestWriter(tmp_path / "manifest", ["duration_s", "snr_db", "speech_fraction"])
    kept = make_sample(1)
    writer.add_kept(kept, "train-000000.tar", "ab" * 32)
    dropped = make_sample(0).drop("audio_filters", "noise", 3.5)
    writer.add_reject(dropped)
    writer.close()
    with pytest.raises(ManifestError, match="incomplete build"):  # no build.json: not published whole
        run_query(tmp_path, "select 1")
    (tmp_path / "build.json").write_text("{}")
    columns, rows = run_query(tmp_path, "select id, shard, snr_db, speech_fraction from samples")
    assert columns == ["id", "shard", "snr_db", "speech_fraction"]
    assert rows == [("s-001", "train-000000.tar", 20.1235, None)]
    _, rows = run_query(tmp_path, "select stage, reason, value from rejects")
    assert rows == [("audio_filters", "noise", 3.5)]
    with pytest.raises(ManifestError):
        run_query(tmp_path, f"copy samples to '{tmp_path}/leak.csv'")
    assert not (tmp_path / "leak.csv").exists()
    with pytest.raises(ManifestError):
        run_query(tmp_path / "nowhere", "select 1")
