"""The streaming dataset: sources, splitting, seeded shuffle, packing, exact resume, corrupt shards."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from build_facts import ManifestFacts
from dataengine.training.dataset import ShardStream
from dataengine.training.loader import StreamCollate, StreamingLoader
from dataengine.training.shards import ShardError, parse_hf_url, resolve_shards
from dataengine.training.tarstream import TarStreamError, iter_members
from torchtune.modules.attention_utils import create_block_causal_mask
from training_fixtures import tiny_tokenizer

MAX_LEN = 256


def stream(source: Path | str, **kw) -> ShardStream:
    kw = {"shuffle_buffer": 4, "seed": 1, "epochs": 1, **kw}
    return ShardStream(str(source), tiny_tokenizer(), max_seq_len=MAX_LEN, **kw)


def batch_ids(loader: StreamingLoader, n: int | None = None) -> list[list[str]]:
    out = []
    for batch in loader:
        out.append(batch["sample_ids"])
        if n is not None and len(out) == n:
            break
    return out


def test_sources_build_folder_version_folder_shard_file_and_hf_urls(
    small_build_dir: Path, tmp_path: Path, small_facts: ManifestFacts
) -> None:
    shards = resolve_shards(small_build_dir)
    assert [Path(s).name for s in shards] == small_facts.shards and len(shards) >= 2
    version = tmp_path / "published" / "versions" / "v1.2.0"
    shutil.copytree(small_build_dir / "shards", version / "shards")
    assert [Path(s).name for s in resolve_shards(version)] == [Path(s).name for s in shards]
    assert resolve_shards(f"{tmp_path / 'published'}@v1.2.0") == resolve_shards(version)
    assert resolve_shards(shards[1]) == [shards[1]]
    with pytest.raises(ShardError, match="no shards"):
        resolve_shards(tmp_path / "published")
    with pytest.raises(ShardError, match="no such file or folder"):
        resolve_shards(tmp_path / "missing")
    loc = parse_hf_url("hf://datasets/org/speech-set@v1.2.0/shards")
    assert (loc.repo_id, loc.revision, loc.path) == ("org/speech-set", "v1.2.0", "shards")
    assert loc.url("shards/train-000000.tar") == "hf://datasets/org/speech-set@v1.2.0/shards/train-000000.tar"
    assert parse_hf_url("hf://datasets/org/x").revision == "main"
    assert resolve_shards("hf://datasets/org/x@v1/shards/train-000000.tar") == [
        "hf://datasets/org/x@v1/shards/train-000000.tar"
    ]
    with pytest.raises(ShardError, match="not an hf://datasets"):
        parse_hf_url("hf://models/org/x")


def test_slots_split_shards_without_duplicates_and_shuffle_is_seeded(
    small_build_dir: Path, small_facts: ManifestFacts
) -> None:
    ds = stream(small_build_dir, shuffle_buffer=8)
    everything = [raw["__key__"] for raw in ds._shuffled(0, 1, 0)]
    assert sorted(everything) == sorted(small_facts.ids) and len(everything) == len(set(everything))
    for n_slots in sorted({2, len(small_facts.shards)}):  # e.g. 1 rank x 3 workers, or 3 ranks x 1 worker
        parts = [[raw["__key__"] for raw in ds._shuffled(slot, n_slots, 0)] for slot in range(n_slots)]
        assert sorted(k for p in parts for k in p) == sorted(everything)
    assert everything == [
        raw["__key__"] for raw in stream(small_build_dir, shuffle_buffer=8)._shuffled(0, 1, 0)
    ]
    other = [raw["__key__"] for raw in stream(small_build_dir, shuffle_buffer=8, seed=2)._shuffled(0, 1, 0)]
    assert other != everything and sorted(other) == sorted(everything)
    assert [raw["__key__"] for raw in ds._shuffled(0, 1, 1)] != everything  # a new order every epoch


def test_packs_fill_max_seq_len_and_mask_the_input(small_build_dir: Path, small_facts: ManifestFacts) -> None:
    tok = tiny_tokenizer()
    items = list(stream(small_build_dir))
    assert sorted(i for item in items for i in item["sample_ids"]) == sorted(
        i for item in stream(small_build_dir, packed=False) for i in item["sample_ids"]
    )
    assert len(items) < small_facts.kept  # several samples per pack
    for item in items:
        assert item["tokens"].shape == (MAX_LEN,) and int(item["seq_lens"].sum()) == MAX_LEN
        starts = np.flatnonzero(item["tokens"] == tok.bos_id).tolist()
        assert len(starts) == len(item["sample_ids"])
        assert (item["input_pos"][starts] == 0).all()
        assert (item["labels"][item["tokens"] == tok.sound_start_id] == -100).all()  # user turn: no loss
    trained = list(stream(small_build_dir, train_on_input=True))
    sound = trained[0]["tokens"] == tok.sound_start_id
    assert (trained[0]["labels"][sound] == tok.sound_start_id).all()


def test_packed_batches_carry_torchtunes_block_causal_mask(small_build_dir: Path) -> None:
    items = list(stream(small_build_dir))[:3]
    batch = StreamCollate(packed=True, pad_id=tiny_tokenizer().pad_id)(items)
    want = create_block_causal_mask([torch.from_numpy(i["seq_lens"]) for i in items])
    assert batch["mask"].shape == (3, MAX_LEN, MAX_LEN) and torch.equal(batch["mask"], want)
    assert batch["sample_ids"] == [s for i in items for s in i["sample_ids"]]


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_continues_at_the_exact_next_sample(
    small_build_dir: Path, small_facts: ManifestFacts, workers: int
) -> None:
    def loader() -> StreamingLoader:
        return StreamingLoader(stream(small_build_dir, epochs=3), batch_size=1, num_workers=workers)

    whole = batch_ids(loader())
    assert sorted(i for b in whole for i in b) == sorted(small_facts.ids * 3)
    for stop in (3, 7):
        first = loader()
        head = batch_ids(first, stop)
        resumed = loader()
        resumed.load_state_dict(first.state_dict())
        assert head + batch_ids(resumed) == whole


def test_dataloader_workers_read_disjoint_shards(small_build_dir: Path, small_facts: ManifestFacts) -> None:
    n_shards = len(small_facts.shards)  # one worker per shard: the most that can be fed
    loader = StreamingLoader(stream(small_build_dir), batch_size=2, num_workers=n_shards)
    ids = [i for b in batch_ids(loader) for i in b]
    assert sorted(ids) == sorted(small_facts.ids) and len(ids) == len(set(ids))
    with pytest.raises(ShardError, match=f"cannot feed {n_shards + 1} ranks x workers"):
        _iterate_with_slots(small_build_dir, n_shards + 1)


def _iterate_with_slots(source: Path, n_slots: int) -> list:
    ds = stream(source)
    ds.slot_info = lambda: (n_slots - 1, n_slots)  # the last of n_slots (rank x worker) slots
    return list(ds)


def _rewrite_member(src: Path, dst: Path, member_suffix: str, payload: bytes) -> str:
    """Copy a shard with one member's bytes replaced (same length, so the tar stays valid)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as tout:
        hit = ""
        for info in tin.getmembers():
            data = tin.extractfile(info).read()
            if not hit and info.name.endswith(member_suffix):
                hit, data = info.name, (payload * len(data))[: len(data)]
            tout.addfile(info, io.BytesIO(data))
    return hit


def test_corrupt_shard_error_names_shard_and_member(small_build_dir: Path, tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shutil.copytree(small_build_dir / "shards", shards)
    bad = shards / "train-000001.tar"
    member = _rewrite_member(small_build_dir / "shards" / bad.name, bad, ".tokens.npy", b"\x00garbage")
    with pytest.raises(ShardError) as err:
        list(stream(tmp_path, shuffle_shards=False))
    assert str(err.value).startswith(f"{bad}: member {member}")
    truncated = shards / "train-000001.tar"
    data = (small_build_dir / "shards" / bad.name).read_bytes()
    truncated.write_bytes(data[: len(data) // 2 + 100])
    # cut mid-sample: the sample's later members are missing (or the tar header is cut): both named
    with pytest.raises(
        ShardError, match=rf"^{truncated}: (member \S+: missing|corrupt tar after member \S+)"
    ):
        list(stream(tmp_path, shuffle_shards=False))


def test_truncated_shard_error_names_the_last_whole_member(small_build_dir: Path, tmp_path: Path) -> None:
    """Cut at a sample boundary (Python's tarfile reads that as a clean end) or inside a header."""
    shard = small_build_dir / "shards" / "train-000001.tar"
    data = shard.read_bytes()
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    (tmp_path / "shards").mkdir()
    cut_file = tmp_path / "shards" / shard.name
    for cut, why in ((members[3].offset, "no end-of-archive block"), (members[3].offset + 100, "truncated")):
        cut_file.write_bytes(data[:cut])
        with pytest.raises(
            ShardError, match=rf"^{cut_file}: corrupt tar after member {members[2].name}: .*{why}"
        ):
            list(stream(tmp_path))


class _Pipe:
    """A non-seekable stream that returns short reads (as curl's pipe does for ``hf://``)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, size: int = -1) -> bytes:
        size = min(size if size >= 0 else len(self.data), 700)
        self.at += size
        return self.data[self.at - size : self.at]

    def close(self) -> None:
        pass


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_reader_matches_tarfile_mapped_and_piped(fmt: int, tmp_path: Path) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for n, size in enumerate([0, 1, 511, 512, 513, 5000, 70000]):
            name = ("long/" * 25 if fmt != tarfile.USTAR_FORMAT and n % 2 else "d/") + f"s{n}.json"
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(range(256)) * (size // 256 + 1)))
            tar.addfile(tarfile.TarInfo(f"s{n}.flac"), io.BytesIO())
    data = out.getvalue()
    (tmp_path / "x.tar").write_bytes(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        want = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.name.endswith(".json")]
        fourth = next(m.offset for m in tar.getmembers() if m.name.endswith("s3.json"))
    with (tmp_path / "x.tar").open("rb") as mapped:
        assert list(iter_members(mapped, (".json",))) == want
    assert list(iter_members(_Pipe(data), (".json",))) == want
    bad = bytearray(data)
    bad[fourth + 130] ^= 1  # a byte of the 4th member's (first) header
    for stream in (io.BytesIO(bytes(bad)), _Pipe(bytes(bad))):
        with pytest.raises(TarStreamError, match="bad header checksum") as err:
            list(iter_members(stream))
        assert err.value.after == "s2.flac"
