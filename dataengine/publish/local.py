"""The embedded default target: a local folder laid out like a Hub dataset repo, one folder per version.

``ROOT/versions/vX.Y.Z/`` holds what the Hub repo would hold at tag ``vX.Y.Z`` (card, shards, manifest,
``checksums.json``); ``ROOT/index.json`` lists the versions. A version is assembled in a locked
``ROOT/.dataengine-stage-*`` folder and renamed into ``versions/`` when complete, so an interrupted push
leaves nothing visible, the next run redoes it, and the next push removes what a killed one left.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from dataengine.crashpoints import crash_point
from dataengine.manifest import COMPLETE_MARK
from dataengine.publish import PublishError
from dataengine.publish.files import CHECKSUMS_FILE, read_checksums
from dataengine.publish.stage import VERSION_PATTERN, check_version, stage_version
from dataengine.publish.verify import verify_build

INDEX_FILE = "index.json"
VERSIONS_DIR = "versions"


HUB_NAME = re.compile(
    r"^(?!.*(?:--|\.\.))[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?$"
)
"""``ORG/NAME`` as the Hub accepts it: letters, digits, ``-``, ``_``, ``.``; no ``--`` or ``..``."""
STAGE_PREFIX = ".dataengine-stage-"
"""A push's working folder inside the repository; locked while in use, so a later push can tell a stale
one (its push was killed) from one in use."""


def local_root(repo: str) -> Path | None:
    """The folder for ``file:///dir`` or a path (``/dir``, ``./dir``, ``../dir``); None for ``ORG/NAME``.

    Anything else is refused, so a mistyped Hub name never becomes a folder."""
    if repo.startswith("file://"):
        path = repo[len("file://") :]
        if not path:
            raise PublishError(f"--repo {repo!r}: no folder after file://")
        return Path(path)
    if repo in (".", "..") or repo.startswith(("/", "./", "../")):
        return Path(repo)
    if HUB_NAME.fullmatch(repo):
        return None
    raise PublishError(
        f"--repo {repo!r}: not a Hub repository ORG/NAME; for a local folder write file:///path, "
        "./path or /path"
    )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version[1:].split("."))


def _versions(root: Path) -> list[str]:
    folder = root / VERSIONS_DIR
    if not folder.is_dir():
        return []
    return sorted(
        (p.name for p in folder.iterdir() if p.is_dir() and VERSION_PATTERN.fullmatch(p.name)),
        key=_version_key,
    )


def check_repo(root: Path) -> None:
    """Refuse, before anything is written, a target that is not a folder or whose ``versions/`` holds
    something this tool did not publish (``index.json`` could not list it)."""
    if root.exists() and not root.is_dir():
        raise PublishError(f"{root}: exists and is not a folder")
    folder = root / VERSIONS_DIR
    if folder.exists() and not folder.is_dir():
        raise PublishError(f"{folder}: exists and is not a folder")
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue  # temporary names (ours: .vX.Y.Z.tmp) are never listed
        problem = None
        if not entry.is_dir() or not VERSION_PATTERN.fullmatch(entry.name):
            problem = "not a version folder (vX.Y.Z)"
        else:
            try:
                read_checksums(entry / CHECKSUMS_FILE)
                json.loads((entry / COMPLETE_MARK).read_text(encoding="utf-8"))
            except (PublishError, OSError, ValueError):
                problem = f"no readable {CHECKSUMS_FILE} and {COMPLETE_MARK}"
        if problem:
            raise PublishError(
                f"{entry}: {problem}, so not a version published by dataengine; move it out of {folder}"
            )


@contextlib.contextmanager
def staging_folder(root: Path) -> Iterator[Path]:
    """A fresh ``ROOT/.dataengine-stage-*`` folder, locked (``flock`` on the folder) while in use and
    removed afterwards. It is created under another name and renamed once locked, so no other push ever
    sees it unlocked; a push killed with SIGKILL drops the lock and leaves it for the next push to remove."""
    made = Path(tempfile.mkdtemp(prefix=".dataengine-new-", dir=root))
    handle = os.open(made, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        folder = root / f"{STAGE_PREFIX}{os.getpid()}-{made.name.rsplit('-', 1)[-1]}"
        os.rename(made, folder)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(handle)
        if made.exists():
            shutil.rmtree(made, ignore_errors=True)


def remove_stale_staging(root: Path) -> list[str]:
    """Remove the ``.dataengine-stage-*`` folders of pushes that were killed (no process holds their
    lock); folders in use by a running push are left alone. Returns the names removed."""
    removed = []
    for made in root.glob(".dataengine-new-*"):  # killed between creating and locking: empty, old
        with contextlib.suppress(OSError):
            if time.time() - made.stat().st_mtime > 600:
                made.rmdir()
    for folder in sorted(root.glob(f"{STAGE_PREFIX}*")):
        if not folder.is_dir() or folder.is_symlink():
            continue
        try:
            handle = os.open(folder, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(handle)
            continue  # a running push holds it
        try:
            shutil.rmtree(folder)
            removed.append(folder.name)
        finally:
            os.close(handle)
    return removed


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
    check_repo(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(root)
    final = root / VERSIONS_DIR / version
    with staging_folder(root) as workdir:
        card_dir = workdir / "card"
        card_dir.mkdir()
        staged = stage_version(out, card_dir, str(final.resolve()), version, local=True)
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
        legacy = root / VERSIONS_DIR / f".{version}.tmp"
        if legacy.exists():
            shutil.rmtree(legacy)  # left by an interrupted push of an earlier dataengine
        tree = workdir / "version"
        for rel, src in staged.files.items():
            dst = tree / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            crash_point("push_copy")
        final.parent.mkdir(exist_ok=True)
        os.rename(tree, final)
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
