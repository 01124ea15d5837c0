"""Which files make up a published version, their sha256 and the build's fingerprint (``checksums.json``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from dataengine.publish import PublishError

CHECKSUMS_FILE = "checksums.json"
CARD_FILE = "README.md"
PLOTS_DIR = "plots"
DATA_PARTS = ("shards", "rejected", "manifest", "recipe.yaml", "build.json")
"""The build's own output: the fingerprint covers exactly these (never the card, which may be re-rendered)."""
OPTIONAL_PARTS = ("rejected",)
"""Parts a build may lack: rejected audio is absent when nothing with audio was rejected (an empty folder
does not survive a push) or the recipe set ``shards.keep_rejected_audio: false``."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_files(out: Path) -> list[str]:
    """Relative POSIX paths of the build's data files, sorted; temporary (dot) files are skipped."""
    out = Path(out)
    paths: list[str] = []
    for part in DATA_PARTS:
        path = out / part
        if path.is_dir():
            paths += [
                p.relative_to(out).as_posix()
                for p in sorted(path.rglob("*"))
                if p.is_file() and not p.name.startswith(".")
            ]
        elif path.is_file():
            paths.append(part)
        elif part not in OPTIONAL_PARTS:
            raise PublishError(f"{out}: not a dataengine build (missing {part})")
    return sorted(paths)


LISTEN_FILES = ("examples/*.flac",)
"""Written with the card for its audio players (``publish.listen``)."""


def card_files(out: Path) -> list[str]:
    """The card, its plots and its example audio, when present."""
    out = Path(out)
    paths = [CARD_FILE] if (out / CARD_FILE).is_file() else []
    if (out / PLOTS_DIR).is_dir():
        paths += [p.relative_to(out).as_posix() for p in sorted((out / PLOTS_DIR).glob("*.png"))]
    for pattern in LISTEN_FILES:
        paths += [p.relative_to(out).as_posix() for p in sorted(out.glob(pattern)) if p.is_file()]
    return paths


def fingerprint(files: dict[str, dict[str, Any]]) -> str:
    """sha256 over the (path, sha256) pairs of the data files: the identity of a build."""
    digest = hashlib.sha256()
    for path in sorted(files):
        if path.split("/")[0] in DATA_PARTS:
            digest.update(f"{path}\0{files[path]['sha256']}\n".encode())
    return digest.hexdigest()


def compute_checksums(out: Path) -> dict[str, Any]:
    """``{"fingerprint", "files": {path: {"sha256", "size"}}}`` for the data files, the card and its plots."""
    out = Path(out)
    files = {
        rel: {"sha256": file_sha256(out / rel), "size": (out / rel).stat().st_size}
        for rel in data_files(out) + card_files(out)
    }
    return {"fingerprint": fingerprint(files), "files": files}


def dump_checksums(checksums: dict[str, Any]) -> bytes:
    return (json.dumps(checksums, indent=1, sort_keys=True) + "\n").encode("utf-8")


def read_checksums(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PublishError(f"{path}: unreadable checksums ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict) or "fingerprint" not in data:
        raise PublishError(f"{path}: not a dataengine checksums file")
    return data
