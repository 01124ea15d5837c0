"""The packed stage cache: bounded files, whole entries after kill -9, many writers at once, gc, bad files."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dataengine.cache import StageCache
from dataengine.cachedb import CacheError, StageDB
from dataengine.cli import main


def payload(n: int, size: int = 1000) -> bytes:
    """Deterministic bytes for entry ``n``: what reading it back must give."""
    seed = hashlib.sha256(str(n).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def key(n: int) -> bytes:
    return hashlib.sha256(f"key-{n}".encode()).digest()


def test_many_entries_live_in_three_files(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    for n in range(2000):
        cache.put("audio_filters", key(n).hex(), {}, {"m": float(n)})
    assert all(cache.get("audio_filters", key(n).hex())["metrics"] == {"m": float(n)} for n in range(2000))
    assert cache.get("audio_filters", key(5000).hex()) is None
    files = sorted(p.name for p in (tmp_path / "stages").iterdir())
    assert files[0] == "audio_filters.sqlite" and len(files) <= 3  # the file, its -wal and -shm
    assert cache.count("audio_filters") == 2000 and cache.count("tts") == 0
    assert not (tmp_path / "stages" / "tts.sqlite").exists()  # counting created nothing


_WRITER = """
import sys, hashlib
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_cachedb import key, payload
from dataengine.cachedb import StageDB
db = StageDB(Path({path!r}))
n = 0
while True:  # until killed
    db.put(key(n), payload(n, 300_000))
    n += 1
"""


def test_kill_9_while_writing_leaves_only_whole_entries(tmp_path: Path) -> None:
    path = tmp_path / "tts.sqlite"
    code = _WRITER.format(tests=str(Path(__file__).parent), path=str(path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(3):  # killed three times, at whatever point of a transaction it is in
        before = StageDB(path).count()[0] if path.exists() else 0
        writer = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline and writer.poll() is None and StageDB(path).count()[0] < before + 5:
            time.sleep(0.01) if path.exists() else time.sleep(0.1)
        time.sleep(0.037)  # somewhere inside a later put
        writer.send_signal(signal.SIGKILL)
        _, stderr = writer.communicate()
        assert writer.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    db = StageDB(path)
    count = db.count()[0]
    assert count >= 15
    assert db.conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    for n in range(count):  # entries 0..count-1, each exactly what was written
        assert db.get(key(n)) == payload(n, 300_000), n
    assert db.get(key(count)) is None
    db.put(key(count), b"after")  # the dead writer holds no lock
    assert db.get(key(count)) == b"after"


def _share_one_cache(root: str, worker: int, queue: mp.Queue) -> None:
    cache = StageCache(Path(root))
    try:
        for n in range(300):
            k = key(n if n % 2 else n + 1000 * worker).hex()  # odd keys shared by all workers
            cache.put("tokenizer", k, {"tokens": payload(n, 4000)}, {"n": float(n)})
            got = cache.get("tokenizer", key(n // 2 * 2 + 1).hex())
            assert got is None or got["fields"]["tokens"] == payload(n // 2 * 2 + 1, 4000)
        queue.put(None)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        queue.put(repr(exc))


def test_processes_writing_one_cache_at_once(tmp_path: Path) -> None:
    """Three processes (the workers of one build, or two builds) write and read the same stage file."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_share_one_cache, args=(str(tmp_path), w, queue)) for w in range(3)]
    for process in workers:
        process.start()
    results = [queue.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(timeout=60)
    assert results == [None, None, None]
    cache = StageCache(tmp_path)
    assert cache.count("tokenizer") == 150 + 3 * 150  # shared odd keys once, each worker's even keys
    for n in range(1, 300, 2):
        assert cache.get("tokenizer", key(n).hex())["fields"]["tokens"] == payload(n, 4000)


def test_gc_removes_only_entries_unused_for_long_and_frees_the_space(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    for n in range(300):
        cache.put("tts", key(n).hex(), {"audio": payload(n, 20_000)}, {})
    db_file = tmp_path / "stages" / "tts.sqlite"
    cache.close()
    with sqlite3.connect(db_file) as conn:  # 100 of them were last used two days ago
        old = {row[0] for row in conn.execute("SELECT key FROM entries ORDER BY key LIMIT 100")}
        conn.executemany("UPDATE entries SET used = used - 2 * 86400 WHERE key = ?", [(k,) for k in old])
    size_before = db_file.stat().st_size
    removed, freed = cache.gc(older_than_s=86400)
    assert removed == 100 and freed >= 100 * 20_000
    assert cache.count("tts") == 200 and db_file.stat().st_size < size_before * 0.8
    survivors = [n for n in range(300) if key(n) not in old]
    assert all(cache.get("tts", key(n).hex()) is not None for n in survivors)


def test_a_hit_records_its_use_so_gc_keeps_the_entry(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    cache.put("tts", key(1).hex(), {"voice": "v"}, {})
    cache.close()
    with sqlite3.connect(tmp_path / "stages" / "tts.sqlite") as conn:
        conn.execute("UPDATE entries SET used = used - 10 * 86400")
    assert cache.get("tts", key(1).hex()) is not None  # a build used it just now
    assert cache.gc(older_than_s=86400) == (0, 0) and cache.count("tts") == 1


def test_a_damaged_payload_is_a_miss_not_a_wrong_result(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    cache.put("tts", key(1).hex(), {"voice": "v"}, {})
    cache.close()
    with sqlite3.connect(tmp_path / "stages" / "tts.sqlite") as conn:
        [(data,)] = conn.execute("SELECT data FROM blobs").fetchall()
        conn.execute("UPDATE blobs SET data = ?", (bytes([data[0] ^ 1]) + data[1:],))  # one bit flipped
    assert cache.get("tts", key(1).hex()) is None


def test_a_file_that_is_not_a_cache_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "tts.sqlite").write_bytes(b"not a database, just bytes" * 100)
    with pytest.raises(CacheError, match=r"tts\.sqlite: not a readable stage cache"):
        StageCache(tmp_path).check()
    result = CliRunner().invoke(main, ["cache", "--cache-dir", str(tmp_path), "stats"])
    assert result.exit_code == 2 and "not a readable stage cache" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_entries_of_the_old_one_file_layout_are_listed_and_collected(tmp_path: Path) -> None:
    old = tmp_path / "stages" / "tts" / "ab"
    old.mkdir(parents=True)
    entry = old / f"{'ab' * 32}.pkl"
    entry.write_bytes(b"x" * 100)
    os.utime(entry, (time.time() - 40 * 86400,) * 2)
    StageCache(tmp_path).put("tts", key(1).hex(), {"voice": "v"}, {})
    result = CliRunner().invoke(main, ["cache", "--cache-dir", str(tmp_path), "stats"])
    assert result.exit_code == 0 and "1 entries" in result.output and "one-file-per-entry" in result.output
    assert StageCache(tmp_path).gc(older_than_s=30 * 86400) == (1, 100)
    assert not (tmp_path / "stages" / "tts").exists() and StageCache(tmp_path).count("tts") == 1
