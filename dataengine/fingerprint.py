"""The parts of a stage's cache key that are not code: installed package versions, model file contents,
the CPU-numerics choice. Each is computed once per process (the same key serves a whole build)."""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from pathlib import Path


@functools.cache
def package_versions(dists: tuple[str, ...]) -> dict[str, str]:
    """The installed version of each distribution (``not installed`` for one that is not)."""
    versions = {}
    for dist in dists:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


@functools.cache
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 prefix of a file's bytes, computed once per process for a given size and mtime."""
    stat = path.stat()
    return _file_digest(path.resolve(), stat.st_size, stat.st_mtime_ns)


def numerics_key() -> dict[str, object]:
    """The CPU-kernel choice that decides a result's last bits: mode, profile, pins, AVX-512."""
    from dataengine import numerics

    info = numerics.describe()
    return {name: info.get(name) for name in ("mode", "profile", "pins", "avx512")}
