"""The build's own integrity record: ``build.json`` lists the sha256 and size of every file the build
wrote (shards, both manifest files, ``recipe.yaml``) and carries a seal, the sha256 of its own contents.

``verify`` checks both, so an edited manifest row, recipe or ``build.json`` — or a byte flipped anywhere in
a shard, even in the tar's end-of-archive padding that no sample covers — is caught on a build that was
never published (a published version has ``checksums.json`` on top). The seal does not stop someone who
recomputes it on purpose; it stops every edit that was not meant to pass as the build's own output.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from dataengine.manifest import COMPLETE_MARK

SEALED_PARTS = ("shards", "manifest", "recipe.yaml")
"""What the build writes besides ``build.json`` itself (the card and plots are derived and re-rendered)."""
FILES_KEY = "files"
SEAL_KEY = "seal"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_files(folder: Path) -> list[str]:
    """Relative POSIX paths of the build's sealed files in ``folder``, sorted; dot files are skipped."""
    paths: list[str] = []
    for part in SEALED_PARTS:
        path = folder / part
        if path.is_dir():
            paths += [
                p.relative_to(folder).as_posix()
                for p in path.rglob("*")
                if p.is_file() and not p.name.startswith(".")
            ]
        elif path.is_file():
            paths.append(part)
    return sorted(paths)


def _seal(info: dict[str, Any]) -> str:
    body = {k: v for k, v in info.items() if k != SEAL_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_build_info(folder: Path, info: dict[str, Any]) -> None:
    """Write ``folder/build.json``: ``info`` plus the digests of the files already in ``folder`` and the
    seal over all of it. Call it last, once every other file of the build is complete."""
    sealed = dict(info)
    sealed[FILES_KEY] = {
        rel: {"sha256": _sha256(folder / rel), "size": (folder / rel).stat().st_size}
        for rel in build_files(folder)
    }
    sealed[SEAL_KEY] = _seal(sealed)
    (folder / COMPLETE_MARK).write_text(json.dumps(sealed, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def check_build_info(out: Path) -> list[str]:
    """Problems with ``out/build.json`` and the files it lists, one line each (empty when all match)."""
    path = Path(out) / COMPLETE_MARK
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [f"{COMPLETE_MARK}: unreadable ({type(exc).__name__})"]
    if not isinstance(info, dict) or not isinstance(info.get(FILES_KEY), dict) or SEAL_KEY not in info:
        return [
            f"{COMPLETE_MARK}: holds no file digests (made by an older dataengine, or not by dataengine): "
            "run the build again"
        ]
    problems = []
    if info[SEAL_KEY] != _seal(info):
        problems.append(f"{COMPLETE_MARK}: edited after the build (its seal does not match its contents)")
    listed: dict[str, Any] = info[FILES_KEY]
    for rel in sorted(set(listed) | set(build_files(Path(out)))):
        file = Path(out) / rel
        want = listed.get(rel)
        if want is None:
            problems.append(f"{rel}: not written by the build (not listed in {COMPLETE_MARK})")
        elif not file.is_file():
            problems.append(f"{rel}: missing")
        elif (
            not isinstance(want, dict)
            or file.stat().st_size != want.get("size")
            or _sha256(file) != want.get("sha256")
        ):
            problems.append(f"{rel}: sha256 differs from {COMPLETE_MARK} (changed after the build)")
    return problems
