"""One SQLite file per stage holding that stage's cache entries: packed, atomic, safe to share.

Why SQLite (the standard library's ``sqlite3``, no new dependency): a million entries live in one file
(plus its ``-wal`` and ``-shm`` companions) instead of a million files; every ``put`` is one transaction,
so a process killed at any instant leaves either the whole entry or none of it (the write-ahead log
is rolled back on the next open); readers never block the one writer of the moment and writers queue on
a lock (``BUSY_TIMEOUT_S``), so the workers of a build and two builds sharing one cache can all use it
at once. ``synchronous=NORMAL`` in WAL mode: a killed process loses nothing it committed; a power cut may
lose the last commits, never the file's consistency. Measured against the one-file-per-entry layout it
replaces: ``benchmarks/bench_cache.py`` (figures in the README).

WAL needs shared memory between the processes that open the file, so the cache folder must be on a local
file system (each node of a cluster keeps its own cache), not NFS.

Entries: ``entries(key, used, size, crc, blob)`` is a small index (last use for ``gc``, the payload's
length and CRC-32, read back before a payload is trusted) and ``blobs(id, data)`` holds the payloads:
apart, so that recording a use rewrites a few bytes and not the whole payload. ``used`` has no index of
its own: ``gc`` (rare) scans the small table, and every put (frequent) saves a B-tree insert (~30 % more
puts/s measured).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 1
SUFFIX = ".sqlite"
BUSY_TIMEOUT_S = 300.0
"""How long a writer waits for the lock (other workers, another build) before the build fails."""
TOUCH_INTERVAL_S = 3600
"""A hit records its time only when the last record is older than this: ``gc`` counts in days, and a
rebuild from a warm cache then writes at most once per entry and hour."""
MMAP_BYTES = 1 << 30
"""Address space each connection may map (not memory it uses): measured +20-45 % hits/s over reads."""
GC_CHUNK = 5000
"""Entries deleted per transaction by ``gc``: short transactions, so running builds keep writing."""
_STAGE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_TABLES = """
CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    key BLOB PRIMARY KEY,
    used INTEGER NOT NULL,
    size INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    blob INTEGER NOT NULL
) WITHOUT ROWID;
"""


class CacheError(ValueError):
    """The cache folder cannot be used (a file, read-only, a damaged file, another format): one line for
    the user."""


def db_path(folder: Path, stage: str) -> Path:
    if not _STAGE_NAME.match(stage):
        raise ValueError(f"stage name {stage!r} cannot name a cache file")
    return folder / f"{stage}{SUFFIX}"


def db_files(folder: Path) -> list[Path]:
    """The stage cache files in ``folder``, sorted by stage name."""
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def disk_bytes(path: Path) -> int:
    """Bytes the database takes on disk, its write-ahead log included."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _unreadable(path: Path, exc: Exception) -> CacheError:
    return CacheError(
        f"{path}: not a readable stage cache ({exc}): move it away, or build with another --cache-dir "
        "or --no-cache"
    )


@contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; the lock is taken at the start (no upgrade deadlock between writers)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class StageDB:
    """The entries of one stage: ``get`` / ``put`` by 32-byte key, ``count``, ``gc``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._prepare()
        except sqlite3.DatabaseError as exc:
            raise _unreadable(path, exc) from None

    def _prepare(self) -> None:
        conn = self.conn
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect only on a new, empty file
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")  # reads without a copy into SQLite's page cache
        version = conn.execute("PRAGMA user_version").fetchall()[0][0]
        if version == 0:
            with _write(conn):  # two processes may create the same file at once: the lock orders them
                if conn.execute("PRAGMA user_version").fetchall()[0][0] == 0:
                    for statement in _TABLES.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise CacheError(
                f"{self.path}: a stage cache of format {version}, this dataengine reads format "
                f"{SCHEMA_VERSION}: use another --cache-dir (or remove the file)"
            )

    def close(self) -> None:
        self.conn.close()

    def get(self, key: bytes) -> bytes | None:
        """The payload stored under ``key``, or None (also when its length or CRC do not match)."""
        rows = self.conn.execute(  # fetchall: the statement ends here, so no read transaction lingers
            "SELECT e.used, e.size, e.crc, b.data FROM entries e JOIN blobs b ON b.id = e.blob "
            "WHERE e.key = ?",
            (key,),
        ).fetchall()
        if not rows:
            return None
        used, size, crc, data = rows[0]
        if len(data) != size or zlib.crc32(data) != crc:
            return None
        now = int(time.time())
        if now - used > TOUCH_INTERVAL_S:
            with _write(self.conn):
                self.conn.execute("UPDATE entries SET used = ? WHERE key = ?", (now, key))
        return data

    def put(self, key: bytes, data: bytes) -> None:
        """Store ``data`` under ``key`` in one transaction; an entry already there is kept (two workers
        that computed the same entry computed the same bytes)."""
        now = int(time.time())
        with _write(self.conn):
            if self.conn.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchall():
                self.conn.execute("UPDATE entries SET used = ? WHERE key = ?", (now, key))
                return
            blob = self.conn.execute("INSERT INTO blobs(data) VALUES (?)", (data,)).lastrowid
            self.conn.execute(
                "INSERT INTO entries(key, used, size, crc, blob) VALUES (?, ?, ?, ?, ?)",
                (key, now, len(data), zlib.crc32(data), blob),
            )

    def count(self) -> tuple[int, int]:
        """(entries, payload bytes)."""
        [(entries, size)] = self.conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM entries"
        ).fetchall()
        return int(entries), int(size)

    def gc(self, cutoff: float) -> tuple[int, int]:
        """Delete entries last used before ``cutoff`` (unix seconds); return (entries, payload bytes).
        The freed pages go back to the file system (incremental vacuum, WAL truncated when no reader
        holds it)."""
        removed = freed = 0
        while True:
            with _write(self.conn):
                rows = self.conn.execute(
                    "SELECT key, size, blob FROM entries WHERE used < ? LIMIT ?", (cutoff, GC_CHUNK)
                ).fetchall()
                if not rows:
                    break
                self.conn.executemany("DELETE FROM blobs WHERE id = ?", [(r[2],) for r in rows])
                self.conn.executemany("DELETE FROM entries WHERE key = ?", [(r[0],) for r in rows])
            removed += len(rows)
            freed += sum(r[1] for r in rows)
        if removed:
            self.conn.executescript("PRAGMA incremental_vacuum;")  # stepped to the end (execute: one page)
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return removed, freed


class StageDBs:
    """The open :class:`StageDB` of each stage, per process (a connection never crosses a fork or a
    pickle: workers open their own)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._open: dict[str, StageDB] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, object]:
        return {"folder": self.folder}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["folder"])  # type: ignore[misc, arg-type]

    def __call__(self, stage: str) -> StageDB:
        if self._pid != os.getpid():
            self._open, self._pid = {}, os.getpid()
        db = self._open.get(stage)
        if db is None:
            db = self._open[stage] = StageDB(db_path(self.folder, stage))
        return db

    def existing(self) -> list[StageDB]:
        """Every stage database already in the folder (none is created)."""
        return [self(path.name.removesuffix(SUFFIX)) for path in db_files(self.folder)]

    def close(self) -> None:
        for db in self._open.values():
            db.close()
        self._open = {}
