"""A key -> text lookup whose memory does not grow with its size: a private temporary SQLite table.

A corpus-wide transcript file is read whole before the audio files it names are walked: Multilingual
LibriSpeech's English ``train/transcripts.txt`` has 10.8 M lines, which a Python ``dict`` would hold in
several GB. Here the lines live in an on-disk B-tree (as :class:`~dataengine.idset.IdSet`'s ids do): only
the page cache stays in memory, and the file goes with the connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from dataengine.idset import private_table

CHUNK = 10_000
"""Rows inserted per ``executemany``."""


class TextTable:
    """``key -> text``, filled once from pairs (a later pair for a key replaces an earlier one, as in a
    ``dict``), then read with :meth:`get`; for one pass (not shared between processes)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._db = private_table("CREATE TABLE texts (key TEXT PRIMARY KEY, text TEXT) WITHOUT ROWID")
        rows = iter(pairs)
        while chunk := list(islice(rows, CHUNK)):
            self._db.executemany("INSERT OR REPLACE INTO texts VALUES (?, ?)", chunk)

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT text FROM texts WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM texts").fetchone()[0]

    def close(self) -> None:
        """Drop the table (its temporary file goes with the connection)."""
        self._db.close()
