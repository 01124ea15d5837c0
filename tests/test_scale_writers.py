"""Memory that does not grow with the build (issue 15.1): the spooled manifest, ids on disk, duplicates
dropped by the source, FLAC encoded in the workers."""

import json
import random
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from sample_fixtures import spoken_pair

from dataengine.audio.io import encode_flac
from dataengine.idset import IdSet
from dataengine.recipe import FilesSource, Recipe
from dataengine.sample import Sample
from dataengine.schema import reject_row, sample_row
from dataengine.sources import DUPLICATE_ID, iter_rows
from dataengine.stage import StageStats
from dataengine.tasks import make_tasks
from dataengine.tasks.plan import MixPlan
from dataengine.writers import members, runs
from dataengine.writers.encode import EncodeMembers
from dataengine.writers.manifest import REJECTS_FILE, SAMPLES_FILE, SPOOL, ManifestWriter
from dataengine.writers.runs import SortedSpool

SCHEMA = pa.schema([("id", pa.string()), ("index", pa.int64()), ("x", pa.float64())])


def _streams(n: int, seed: int = 1) -> list[dict]:
    """Rows as the ordered writer sees them: three streams, each in index order, interleaved by a mix."""
    rnd = random.Random(seed)
    streams = [iter(range(n)), iter(range(0, n // 3)), iter(range(5, n, 2))]
    rows: list[dict] = []
    while len(rows) < n:
        k = rnd.choice([0, 0, 0, 1, 2])
        value = next(streams[k], None)
        if value is not None:
            rows.append({"id": f"{'abc'[k]}-{value:05d}", "index": value, "x": None if value % 5 else 0.5})
    return rows


@pytest.mark.parametrize("order", ["streams", "random", "descending"])
def test_the_spool_gives_back_every_row_sorted_in_bounded_runs(
    tmp_path: Path, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = {"RUN_ROWS": 8, "MAX_OPEN": 4, "FAN_IN": 3, "CHUNK_ROWS": 16, "OUT_ROWS": 50}
    for name, value in small.items():
        monkeypatch.setattr(runs, name, value)  # small, so chunks and several merge passes all happen
    rows = _streams(600)
    if order == "random":
        random.Random(0).shuffle(rows)
    elif order == "descending":
        rows.reverse()
    spool = SortedSpool(tmp_path / "spool", SCHEMA, ["index", "id"])
    for row in rows:
        spool.add(row)
    if order == "streams":
        assert len(spool._open) == 3  # three sorted streams make three runs (patience sorting)
    rows.append(dict(rows[0]))  # an equal key keeps its arrival order
    spool.add(rows[-1])
    batches = list(spool.sorted_batches())
    assert all(b.num_rows <= 50 for b in batches)
    expected = sorted(range(len(rows)), key=lambda i: (rows[i]["index"], rows[i]["id"], i))
    assert pa.Table.from_batches(batches, schema=SCHEMA).to_pylist() == [rows[i] for i in expected]
    spool.close()
    assert not (tmp_path / "spool").exists()


def _row(sample: Sample, metrics: list[str]) -> Sample:
    turn = sample.turns[0]
    turn.voice, turn.tokens = "v", np.arange(sample.index % 7 + 1, dtype=np.int16)
    turn.audio = np.zeros(160 * (sample.index % 5 + 1), dtype=np.float32)
    turn.metrics = {name: sample.index / 7 for name in metrics[: sample.index % len(metrics)]}
    sample.task = "instruction"
    return sample


def test_the_manifest_bytes_equal_one_sorted_copy_of_all_rows(tmp_path: Path) -> None:
    """The streamed writer makes the bytes the in-memory writer made (one COPY ... ORDER BY of every row)."""
    metrics = ["snr_db", "speech_fraction", "n_sound_tokens"]
    writer = ManifestWriter(tmp_path / "manifest", metrics)
    samples, rejects = [], []
    for n, row in enumerate(_streams(5000)):
        sample = _row(spoken_pair(row["id"], row["index"], f"prompt {n} " * (n % 4), "answer"), metrics)
        if n % 9 == 0:
            sample.drop("audio_filters", "noise", 1.5, turn=0)
            shard = "train-000000.tar" if n % 2 else None
            rejects.append((sample, shard))
            writer.add_reject(sample, shard)
        else:
            samples.append(sample)
            writer.add_kept(sample, "train-000001.tar", "ab" * 32)
    assert (tmp_path / "manifest" / SPOOL).is_dir()  # rows are on disk, not in lists
    writer.close()
    assert sorted(p.name for p in (tmp_path / "manifest").iterdir()) == [REJECTS_FILE, SAMPLES_FILE]
    assert writer.kept == len(samples) and writer.reasons == {"audio_filters/noise": len(rejects)}

    # what the writer did before: every row in memory, one COPY ... ORDER BY (same rows, same schema)
    kept_rows = [sample_row(s, "train-000001.tar", "ab" * 32, writer.sample_metrics) for s in samples]
    reject_rows = [{**reject_row(s, writer.reject_metrics), "shard": shard} for s, shard in rejects]
    con = duckdb.connect()
    con.execute("SET threads = 1")
    for name, rows in ((SAMPLES_FILE, kept_rows), (REJECTS_FILE, reject_rows)):
        rows_table = pa.Table.from_pylist(rows, schema=writer._spools[name].schema)  # noqa: F841 - read by DuckDB
        out = tmp_path / f"before-{name}"
        query = 'SELECT * FROM rows_table ORDER BY "index", id'
        con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
        assert out.read_bytes() == (tmp_path / "manifest" / name).read_bytes(), name


def test_an_id_set_is_exact_and_holds_its_ids_on_disk() -> None:
    ids = IdSet()
    assert ids.add("a-1") and not ids.add("a-1") and ids.add("a-2")
    assert "a-1" in ids and "a-3" not in ids
    ids.close()


def test_a_repeated_id_is_rejected_by_the_source_before_any_stage(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    rows = [{"id": i, "p": f"prompt {n}", "r": "answer"} for n, i in enumerate("xyx")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = FilesSource(kind="files", paths=[path], prompt_column="p", response_column="r", id_column="id")
    got = list(iter_rows(source))
    assert [s.kept for s in got] == [True, True, False]
    assert (got[2].reject.stage, got[2].reject.reason) == ("source", DUPLICATE_ID)
    recipe = Recipe.model_validate(
        {"name": "t", "source": source.model_dump(mode="json"), "tasks": {"instruction": {"share": 1.0}}}
    )
    fed = list(MixPlan(recipe, make_tasks(recipe)).feed())  # what the executor's stages get
    assert [(s.id, s.kept) for s in fed] == [("rows-x", True), ("rows-y", True), ("rows-x", False)]


def test_the_workers_encode_the_flac_and_the_writer_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    kept = spoken_pair("k", 0, "hello", audio=(0.1 * rng.standard_normal(8000)).astype(np.float32))
    rejected = spoken_pair("r", 1, "bye", audio=(0.1 * rng.standard_normal(4000)).astype(np.float32))
    rejected.drop("audio_filters", "noise", 1.0, turn=0)
    silent = Sample.pair("t", 2, "text only", "answer")
    stats = StageStats("encode")
    EncodeMembers(keep_audio=True, keep_rejected_audio=True)([kept, rejected, silent], stats)
    assert kept.flac == encode_flac(kept.turns[0].audio)
    assert rejected.flac == encode_flac(rejected.turns[0].audio)
    assert silent.flac is None and stats.seen == 3

    def refuse(*_: object) -> bytes:
        raise AssertionError("the ordered part encoded audio")

    monkeypatch.setattr(members, "encode_flac", refuse)
    kept.turns[0].tokens = np.arange(3, dtype=np.int16)
    assert members.sample_members(kept, keep_audio=True)["flac"] == kept.flac
    assert members.reject_members(rejected)["flac"] == rejected.flac
    off = spoken_pair("o", 3, "hi", audio=np.zeros(800, dtype=np.float32))
    EncodeMembers(keep_audio=False, keep_rejected_audio=False)([off], StageStats("encode"))
    assert off.flac is None  # shards.keep_audio: false: nothing encoded


def test_the_member_writer_makes_webdataset_s_tar_bytes() -> None:
    import io

    import webdataset as wds

    from dataengine.writers.tar import MemberWriter

    rnd = random.Random(0)
    for _ in range(20):
        samples = []
        for i in range(rnd.randrange(0, 5)):  # names up to and over tarfile's 100-byte ustar limit
            key = "k" * rnd.choice([3, 90, 95, 96, 97, 120]) + str(i)
            exts = rnd.sample(["json", "tokens.npy", "flac"], rnd.randrange(1, 4))
            samples.append((key, {e: rnd.randbytes(rnd.choice([0, 1, 511, 512, 513, 3000])) for e in exts}))
        before, after = io.BytesIO(), io.BytesIO()
        tar = wds.TarWriter(before, user="", group="", mode=0o444, mtime=0, encoder=False)
        ours = MemberWriter(after)
        for key, parts in samples:
            tar.write({"__key__": key, **parts})
            ours.write(key, parts)
        tar.close()
        ours.close()
        assert after.getvalue() == before.getvalue()


def test_a_large_manifest_is_cut_into_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB holds a whole row group while it writes: a long manifest is several bounded ones."""
    import pyarrow.parquet as pq

    from dataengine.writers import manifest

    monkeypatch.setattr(manifest, "COPY_OPTIONS", "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 2048")
    writer = ManifestWriter(tmp_path / "manifest", ["snr_db"])
    for row in _streams(5000):
        writer.add_kept(
            _row(spoken_pair(row["id"], row["index"], "p"), ["snr_db"]), "train-000000.tar", "0" * 64
        )
    writer.close()
    table = pq.ParquetFile(tmp_path / "manifest" / SAMPLES_FILE)
    assert table.metadata.num_row_groups == 3 and table.metadata.num_rows == 5000
    keys = list(zip(*table.read(columns=["index", "id"]).to_pydict().values(), strict=True))
    assert keys == sorted(keys)


def test_the_engine_benchmark_runs_the_ordered_part(tmp_path: Path) -> None:
    """`make bench`'s scale row on 200 samples: it drives the real ordered writer (it broke once when the
    writer's signature changed and only the benchmark called it that way)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"
    done = subprocess.run(
        [sys.executable, str(script), "--engine-child", "200", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["samples"] == 200 and 0 < result["kept"] <= 200 and result["peak_rss_mb"] > 0
