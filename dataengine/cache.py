"""A content-addressed cache of per-sample stage results, shared by every build on the machine.

An entry is keyed by sha256(stage fingerprint, the turn fields the stage reads) and holds the fields
the stage wrote plus the metrics it added (one entry per spoken turn). So a threshold change re-runs
only the cheap ``judge`` step, a new tokenizer re-encodes but reuses the audio, and new source rows
synthesize only themselves. Entries are packed into one SQLite file per stage (:mod:`dataengine.cachedb`),
each written in one transaction, so a killed build leaves only whole entries behind and the same command
resumes from them.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.audio.pcm import from_pcm16, to_pcm16
from dataengine.cachedb import SUFFIX, CacheError, StageDBs, db_path, disk_bytes
from dataengine.sample import Sample, Turn, Unit
from dataengine.stage import Stage, StageStats


def cache_root() -> Path:
    """``$DATAENGINE_CACHE`` or ``~/.cache/dataengine``."""
    return Path(os.environ.get("DATAENGINE_CACHE") or Path.home() / ".cache" / "dataengine")


def _hash_value(digest: Any, value: object) -> None:
    if isinstance(value, np.ndarray):
        digest.update(f"nd:{value.dtype.str}:{value.shape}:".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    else:
        digest.update(f"{type(value).__name__}:{value!r}".encode())
    digest.update(b"\0")


def _pack(value: object) -> object:
    """Float32 audio already on the 16-bit grid is stored as int16 (half the bytes, exact)."""
    if isinstance(value, np.ndarray) and value.dtype == np.float32 and value.ndim == 1:
        pcm = to_pcm16(value)
        if np.array_equal(from_pcm16(pcm), value):
            return ("pcm16", pcm)
    return value


def _unpack(value: object) -> object:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "pcm16":
        return from_pcm16(value[1])
    return value


@dataclass
class CacheStats:
    entries: int
    bytes: int
    """On disk: the stage files with their write-ahead logs."""
    by_stage: dict[str, tuple[int, int]]
    """Stage -> (entries, bytes on disk)."""
    legacy: tuple[int, int] = (0, 0)
    """(files, bytes) of entries in the one-file-per-entry layout of earlier dataengine versions."""


class StageCache:
    """``root/stages/<stage>.sqlite``, one packed file per stage, holding pickles this tool wrote itself.

    Picklable: a worker process (or Ray actor) that unpickles it opens its own connections.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_root()) / "stages"
        self._dbs = StageDBs(self.root)

    def key(self, fingerprint: str, turn: Turn, reads: tuple[str, ...]) -> str:
        digest = hashlib.sha256(fingerprint.encode())
        for field in reads:
            digest.update(field.encode() + b"=")
            _hash_value(digest, getattr(turn, field))
        return digest.hexdigest()

    def check(self) -> None:
        """Create the cache folder if needed, write (and remove) a probe file in it and open every stage
        file already there, so a cache that is a file, read-only or damaged fails before a build starts
        rather than at its first stored result (in every worker)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe.{os.getpid()}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            blocker = next((p for p in (self.root, *self.root.parents) if p.exists()), self.root)
            if blocker.exists() and not blocker.is_dir():
                reason = f"{blocker} is a file, not a folder"
            else:
                reason = exc.strerror or type(exc).__name__
            raise CacheError(f"cache folder {self.root.parent}: not writable ({reason})") from None
        self.verify()

    def verify(self) -> None:
        """Open every stage file already there (CacheError when one is damaged or of another format);
        creates nothing."""
        self._dbs.existing()

    def get(self, stage: str, key: str) -> dict[str, Any] | None:
        data = self._dbs(stage).get(bytes.fromhex(key))
        if data is None:
            return None
        try:
            payload = pickle.loads(data)
        except Exception:  # noqa: BLE001 - e.g. written by a newer numpy: recompute rather than fail
            return None
        fields = {k: _unpack(v) for k, v in payload["fields"].items()}
        return {"fields": fields, "metrics": payload["metrics"]}

    def put(self, stage: str, key: str, fields: dict[str, Any], metrics: dict[str, float]) -> None:
        payload = {"fields": {k: _pack(v) for k, v in fields.items()}, "metrics": metrics}
        self._dbs(stage).put(bytes.fromhex(key), pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))

    def count(self, stage: str) -> int:
        """Entries of ``stage`` (0 when it has none yet; no file is created)."""
        if not db_path(self.root, stage).is_file():
            return 0
        return self._dbs(stage).count()[0]

    def close(self) -> None:
        self._dbs.close()

    def _legacy_entries(self) -> list[Path]:
        return sorted(self.root.glob("*/*/*.pkl")) if self.root.is_dir() else []

    def stats(self) -> CacheStats:
        by_stage = {
            db.path.name.removesuffix(SUFFIX): (db.count()[0], disk_bytes(db.path))
            for db in self._dbs.existing()
        }
        legacy = [path.stat().st_size for path in self._legacy_entries()]
        return CacheStats(
            entries=sum(c for c, _ in by_stage.values()),
            bytes=sum(b for _, b in by_stage.values()),
            by_stage=dict(sorted(by_stage.items())),
            legacy=(len(legacy), sum(legacy)),
        )

    def gc(self, older_than_s: float, now: float | None = None) -> tuple[int, int]:
        """Delete entries unused for ``older_than_s`` seconds (and, from the older one-file-per-entry layout,
        entry files unused as long and stray temp files); return (entries, payload bytes) removed."""
        cutoff = (time.time() if now is None else now) - older_than_s
        removed = freed = 0
        for db in self._dbs.existing():
            entries, size = db.gc(cutoff)
            removed, freed = removed + entries, freed + size
        if not self.root.is_dir():
            return removed, freed
        for path in [*self._legacy_entries(), *self.root.glob("*/*/.*.tmp")]:
            stat = path.stat()
            if stat.st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed, freed = removed + 1, freed + stat.st_size
        for folder in sorted(self.root.glob("*/*"), reverse=True) + sorted(self.root.glob("*")):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # an emptied folder of the old layout
        return removed, freed


class CachedStage(Stage):
    """Wraps a cacheable stage: hits restore the stage's outputs, misses run it and are stored.

    It knows nothing of what the stage does beyond its declared ``reads``/``writes``.
    """

    def __init__(self, inner: Stage, cache: StageCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.origins = inner.origins
        self.metrics = inner.metrics
        self.reject_reasons = inner.reject_reasons
        self.reads = inner.reads
        self.writes = inner.writes
        self._fingerprint: str | None = None
        self._ready = False
        self.hits = 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ready": False}

    def check(self) -> None:
        self.inner.check()

    def applies(self, turn: Turn) -> bool:
        return self.inner.applies(turn)

    def setup(self) -> None:
        """Nothing yet: the wrapped stage loads its model at the first miss (a rebuild may have none)."""

    def process(self, units: list[Unit]) -> None:
        self.inner.process(units)

    def failures(self, unit: Unit) -> list[tuple[str, float]]:
        return self.inner.failures(unit)

    def judge(self, unit: Unit) -> None:
        self.inner.judge(unit)

    def stop_reason(self, stats: StageStats, final: bool) -> str | None:
        return self.inner.stop_reason(stats, final)

    def run(self, units: list[Unit]) -> None:
        if self._fingerprint is None:
            self._fingerprint = self.inner.fingerprint()
        keys = {id(u.turn): self.cache.key(self._fingerprint, u.turn, self.inner.reads) for u in units}
        misses = []
        for unit in units:
            payload = self.cache.get(self.name, keys[id(unit.turn)])
            if payload is None:
                misses.append(unit)
                continue
            for field, value in payload["fields"].items():
                setattr(unit.turn, field, value)
            unit.turn.metrics.update(payload["metrics"])
        self.hits += len(units) - len(misses)
        before = {id(u.turn): dict(u.turn.metrics) for u in misses}
        if misses:
            if not self._ready:
                self.inner.start()
                self._ready = True
            self.inner.process(misses)
        for unit in misses:
            if unit.kept:  # a failed sample is retried next time, not remembered
                turn = unit.turn
                added = {k: v for k, v in turn.metrics.items() if before[id(turn)].get(k) != v}
                fields = {field: getattr(turn, field) for field in self.inner.writes}
                self.cache.put(self.name, keys[id(turn)], fields, added)
        for unit in units:
            if unit.kept:
                self.inner.judge(unit)

    def __call__(self, samples: list[Sample], stats: StageStats) -> list[Sample]:
        hits_before = self.hits
        result = super().__call__(samples, stats)
        stats.cached += self.hits - hits_before
        return result
