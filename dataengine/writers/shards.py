"""Sharded WebDataset tar files, bounded by sample count and bytes, byte-deterministic."""

from __future__ import annotations

import os
from pathlib import Path

from dataengine.crashpoints import crash_point
from dataengine.idset import IdSet
from dataengine.writers.tar import MemberWriter

TAR_BLOCK = 512


def _tar_size(payload: int) -> int:
    """Bytes one member takes in a tar file: a header block plus data padded to whole blocks."""
    return TAR_BLOCK + -(-payload // TAR_BLOCK) * TAR_BLOCK


class ShardWriter:
    """Writes ``{split}-{000000}.tar`` files; each is written as ``.name.tmp`` and renamed when complete.

    Members carry fixed metadata (mtime 0, no user names, mode 0444) so the bytes depend only on
    the samples.
    """

    def __init__(
        self, folder: Path, split: str, max_samples: int, max_bytes: int, unique_keys: bool = False
    ) -> None:
        """``unique_keys``: remember every key written (on disk), so :meth:`holds` can tell a repeated one."""
        self.folder = folder
        self.split = split
        self.max_samples = max_samples
        self.max_bytes = max_bytes
        self.shards: list[str] = []
        self._writer: MemberWriter | None = None
        self._handle = None
        self._count = 0
        self._bytes = 0
        self._keys = IdSet() if unique_keys else None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def current_name(self) -> str:
        return f"{self.split}-{len(self.shards):06d}.tar"

    def _open(self) -> None:
        self._handle = open(self.folder / f".{self.current_name}.tmp", "wb")  # noqa: SIM115
        self._writer = MemberWriter(self._handle, mode=0o444)  # webdataset's TarWriter's bytes, faster
        self._count = 0
        self._bytes = 0

    def _close(self) -> None:
        if self._writer is None:
            return
        name = self.current_name
        self._writer.close()
        assert self._handle is not None
        self._handle.close()
        os.replace(self.folder / f".{name}.tmp", self.folder / name)
        crash_point("shard_closed")
        self.shards.append(name)
        self._writer = None
        self._handle = None

    def holds(self, key: str) -> bool:
        """Whether ``key`` was written already (only known with ``unique_keys``)."""
        return self._keys is not None and key in self._keys

    def add(self, key: str, members: dict[str, bytes]) -> str:
        """Append one sample (rolling over to a new shard first when it would not fit); return its shard."""
        size = sum(_tar_size(len(payload)) for payload in members.values())
        if self._writer is not None and (
            self._count >= self.max_samples or (self._count and self._bytes + size > self.max_bytes)
        ):
            self._close()
        if self._writer is None:
            self._open()
        assert self._writer is not None
        self._writer.write(key, members)
        if self._keys is not None:
            self._keys.add(key)
        self._count += 1
        self._bytes += size
        return self.current_name

    def close(self) -> list[str]:
        """Finish the open shard; return every shard name written."""
        self._close()
        if self._keys is not None:
            self._keys.close()
            self._keys = None
        return list(self.shards)
