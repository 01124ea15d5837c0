"""Stage cache at scale: the packed SQLite layout against the one-file-per-entry layout it replaced.

For N entries (default 100 k) of a metrics-sized payload (what the audio filters store: 16 floats) and a
smaller number of audio-sized ones (what TTS stores: a 3 s int16 clip), both layouts are filled, read back
in random order (hits), probed for absent keys (misses), summarised (``cache stats``) and emptied
(``cache gc``). Reported: entries/s, lookups/s, files created, bytes on disk. Not a test: run it by hand,
``python benchmarks/bench_cache.py [--entries 100000] [--audio-entries 2000]``; on a shared machine
compare the ratios, which are measured in the same run (each layout twice, in the order A B B A, the
better of its two figures reported).
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.cache import StageCache, _pack


class FilePerEntryCache:
    """The layout of dataengine/cache.py before the packed store (kept here only to compare against):
    ``stages/<stage>/<key[:2]>/<key>.pkl``, temp file + rename per put, ``utime`` per hit."""

    def __init__(self, root: Path) -> None:
        self.root = root / "stages"

    def _path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / f"{key}.pkl"

    def get(self, stage: str, key: str) -> dict[str, Any] | None:
        path = self._path(stage, key)
        try:
            payload = pickle.loads(path.read_bytes())
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            return None
        os.utime(path)
        return payload

    def put(self, stage: str, key: str, fields: dict[str, Any], metrics: dict[str, float]) -> None:
        path = self._path(stage, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        payload = {"fields": {k: _pack(v) for k, v in fields.items()}, "metrics": metrics}  # int16 audio too
        tmp.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, path)

    def stats(self) -> int:
        return sum(1 for _ in self.root.glob("*/*/*.pkl"))

    def gc(self, older_than_s: float, now: float) -> int:
        removed = 0
        for path in self.root.glob("*/*/*.pkl"):
            if path.stat().st_mtime < now - older_than_s:
                path.unlink()
                removed += 1
        return removed


def files_and_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_blocks * 512 for p in files)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(layout: str, root: Path, n: int, make: Callable[[int], tuple[dict, dict]], stage: str) -> dict:
    cache: Any = StageCache(root) if layout == "packed" else FilePerEntryCache(root)
    rng = random.Random(n)
    keys = [f"{rng.getrandbits(256):064x}" for _ in range(n)]
    payloads = [make(i) for i in range(n)]
    put_s = timed(lambda: [cache.put(stage, k, *p) for k, p in zip(keys, payloads, strict=True)])
    order = random.Random(1).sample(range(n), n)
    hit_s = timed(lambda: [cache.get(stage, keys[i]) for i in order])
    assert cache.get(stage, keys[order[0]]) is not None
    absent = [f"{rng.getrandbits(256):064x}" for _ in range(min(n, 20_000))]
    miss_s = timed(lambda: [cache.get(stage, k) for k in absent])
    files, disk = files_and_bytes(root)
    stats_s = timed(cache.stats)
    later = time.time() + 3600
    gc_s = timed(lambda: cache.gc(older_than_s=60, now=later))
    files_after, _ = files_and_bytes(root)
    return {
        "puts/s": n / put_s,
        "hits/s": n / hit_s,
        "misses/s": len(absent) / miss_s,
        "files": files,
        "MiB on disk": disk / 2**20,
        "stats s": stats_s,
        "gc s": gc_s,
        "files after gc": files_after,
    }


def metrics_entry(i: int) -> tuple[dict, dict]:
    return {}, {f"metric_{m}": float(i) + m / 16 for m in range(16)}


def audio_entry(i: int) -> tuple[dict, dict]:
    clip = np.random.default_rng(i).integers(-3000, 3000, 48_000).astype(np.float32) / 32768
    return {"voice": "piper:joe-us@1", "audio": clip}, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--audio-entries", type=int, default=2_000)
    args = parser.parse_args()
    results: dict[str, dict[str, dict]] = {}
    for label, n, make, stage in (
        (f"{args.entries:,} metric entries", args.entries, metrics_entry, "audio_filters"),
        (f"{args.audio_entries:,} audio entries (3 s)", args.audio_entries, audio_entry, "tts"),
    ):
        results[label] = {}
        for layout in ("files", "packed", "packed", "files"):  # ABBA, best of two: load drifts over a run
            with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
                result = run(layout, Path(tmp), n, make, stage)
            best = results[label].setdefault(layout, result)
            for metric, value in result.items():
                better = max if metric.endswith("/s") else min
                best[metric] = better(best[metric], value)
    for label, by_layout in results.items():
        print(f"\n{label}")
        print(f"  {'':<16}{'one file/entry':>16}{'packed (SQLite)':>18}{'packed / files':>16}")
        for metric in by_layout["files"]:
            old, new = by_layout["files"][metric], by_layout["packed"][metric]
            ratio = f"{new / old:.2f}x" if old else "-"
            print(f"  {metric:<16}{old:>16,.1f}{new:>18,.1f}{ratio:>16}")


if __name__ == "__main__":
    main()
