"""The embedded default target: a local folder laid out like a Hub dataset repo, one folder per version.

``ROOT/versions/vX.Y.Z/`` holds what the Hub repo would hold at tag ``vX.Y.Z`` (card, shards, manifest,
``checksums.json``); ``ROOT/index.json`` lists the versions. A version is copied under a temporary name
and renamed when complete, so an interrupted push leaves nothing visible and the next run redoes it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from dataengine.publish import PublishError
from dataengine.publish.files import CHECKSUMS_FILE, read_checksums
from dataengine.publish.stage import check_version, stage_version
from dataengine.publish.verify import verify_build

INDEX_FILE = "index.json"
VERSIONS_DIR = "versions"


def local_root(repo: str) -> Path | None:
    """The folder for ``file:///dir`` or a path (absolute, ``./``, ``../``, ``~``); None for ``ORG/NAME``."""
    if repo.startswith("file://"):
        return Path(repo[len("file://") :])
    if repo.startswith(("/", ".", "~")) or repo.count("/") != 1:
        return Path(repo).expanduser()
    return None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version[1:].split("."))


def _versions(root: Path) -> list[str]:
    folder = root / VERSIONS_DIR
    if not folder.is_dir():
        return []
    return sorted(
        (p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_version_key
    )


def write_index(root: Path) -> None:
    """Rewrite ``index.json`` from the version folders (temporary name, then rename)."""
    entries = []
    for version in _versions(root):
        checksums = read_checksums(root / VERSIONS_DIR / version / CHECKSUMS_FILE)
        build = json.loads((root / VERSIONS_DIR / version / "build.json").read_text(encoding="utf-8"))
        entries.append(
            {
                "version": version,
                "fingerprint": checksums["fingerprint"],
                "recipe": build.get("recipe"),
                "samples": build.get("kept"),
                "audio_seconds": build.get("audio_seconds"),
                "path": f"{VERSIONS_DIR}/{version}",
            }
        )
    index = {
        "format": "dataengine-local-repo/1",
        "latest": entries[-1]["version"] if entries else None,
        "versions": entries,
    }
    tmp = root / f".{INDEX_FILE}.tmp"
    tmp.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, root / INDEX_FILE)


def push_local(out: Path, root: Path, version: str) -> str:
    """Publish build ``out`` as ``version`` under ``root``; return a one-line account."""
    check_version(version)
    root.mkdir(parents=True, exist_ok=True)
    final = root / VERSIONS_DIR / version
    with tempfile.TemporaryDirectory(prefix=".stage-", dir=root) as workdir:
        staged = stage_version(out, Path(workdir), str(final.resolve()), version, local=True)
        if final.is_dir():
            existing = read_checksums(final / CHECKSUMS_FILE)["fingerprint"]
            if existing == staged.fingerprint:
                write_index(root)
                return (
                    f"{version} already holds this build in {root} (fingerprint {existing[:12]}): "
                    "nothing to do"
                )
            raise PublishError(
                f"{root}: {version} already holds a different build (fingerprint {existing[:12]}, this build "
                f"{staged.fingerprint[:12]}); publish it under a new version"
            )
        tmp = root / VERSIONS_DIR / f".{version}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)  # left by an interrupted push
        for rel, src in staged.files.items():
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        os.rename(tmp, final)
    write_index(root)
    return f"published {version} to {root}: {staged.samples} samples, {len(staged.files)} files"


def pull_local(root: Path, version: str, dest: Path) -> Path:
    """Copy ``version`` from ``root`` into ``dest`` (temporary name, verify, rename)."""
    check_version(version)
    src = root / VERSIONS_DIR / version
    if not src.is_dir():
        have = ", ".join(_versions(root)) or "none"
        raise PublishError(f"{root}: no version {version} (versions: {have})")
    return install_verified(src, dest)


def install_verified(src: Path, dest: Path) -> Path:
    """Copy the folder ``src`` next to ``dest``, verify it there and rename it into place."""
    if dest.exists() and any(dest.iterdir()):
        raise PublishError(f"{dest}: exists and is not empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.pull-tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(".cache"))
    if not (tmp / CHECKSUMS_FILE).is_file():
        shutil.rmtree(tmp)
        raise PublishError(f"{src}: no {CHECKSUMS_FILE}: not a version published by dataengine")
    report = verify_build(tmp)
    if not report.ok:
        shutil.rmtree(tmp)
        raise PublishError(report.summary().replace(str(tmp), str(dest)))
    if dest.exists():
        dest.rmdir()
    os.rename(tmp, dest)
    return dest
