"""Members of tar shards read in place: where each lies (from the tar headers, checked), and its bytes."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

from dataengine.training.tarstream import member_spans

INDEXED_SHARDS = 64
"""Shard indexes kept in memory (each a few entries per sample)."""


class ShardIndex:
    """``(shard, key, extension) -> (offset, size)``, one tar walk per shard, the latest shards kept."""

    def __init__(self, capacity: int = INDEXED_SHARDS) -> None:
        self.capacity = capacity
        self._shards: OrderedDict[tuple[Path, float], dict[tuple[str, str], tuple[int, int]]] = OrderedDict()
        self._lock = threading.Lock()

    def _index(self, shard: Path) -> dict[tuple[str, str], tuple[int, int]]:
        stamp = (shard, shard.stat().st_mtime)
        with self._lock:
            if stamp in self._shards:
                self._shards.move_to_end(stamp)
                return self._shards[stamp]
        members = {}
        for name, offset, size in member_spans(shard):
            key, _, ext = name.rpartition("/")[2].partition(".")
            members.setdefault((key, ext), (offset, size))
        with self._lock:
            self._shards[stamp] = members
            while len(self._shards) > self.capacity:
                self._shards.popitem(last=False)
        return members

    def locate(self, shard: Path, key: str, ext: str) -> tuple[int, int] | None:
        return self._index(shard).get((key, ext))

    def read(self, shard: Path, key: str, ext: str) -> bytes | None:
        span = self.locate(shard, key, ext)
        if span is None:
            return None
        return read_range(shard, span[0], span[1])


def read_range(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)
