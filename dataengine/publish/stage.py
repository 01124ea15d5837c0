"""What one published version holds: the verified build, a fresh card with plots, and ``checksums.json``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dataengine.publish import PublishError
from dataengine.publish.card import write_card
from dataengine.publish.files import (
    CHECKSUMS_FILE,
    card_files,
    data_files,
    dump_checksums,
    file_sha256,
    fingerprint,
)
from dataengine.publish.verify import verify_build

VERSION_PATTERN = re.compile(r"^v\d+\.\d+\.\d+$")


def check_version(version: str) -> str:
    if not VERSION_PATTERN.fullmatch(version):
        raise PublishError(f"version {version!r} must look like vX.Y.Z (e.g. v1.0.0)")
    return version


@dataclass
class StagedVersion:
    files: dict[str, Path]
    """Path in the repository -> local file."""
    fingerprint: str
    samples: int

    def size(self) -> int:
        return sum(path.stat().st_size for path in self.files.values())


def stage_version(out: Path, workdir: Path, repo_id: str, version: str, local: bool = False) -> StagedVersion:
    """Verify ``out``, render its card into ``workdir`` and list every file of the version."""
    out = Path(out)
    report = verify_build(out)
    if not report.ok:
        raise PublishError(report.summary())
    write_card(out, repo_id, version, dest=workdir, local=local)
    files = {rel: out / rel for rel in data_files(out)}
    files.update({rel: workdir / rel for rel in card_files(workdir)})
    listing = {rel: {"sha256": file_sha256(p), "size": p.stat().st_size} for rel, p in files.items()}
    checksums = {"fingerprint": fingerprint(listing), "files": listing, "version": version}
    (workdir / CHECKSUMS_FILE).write_bytes(dump_checksums(checksums))
    files[CHECKSUMS_FILE] = workdir / CHECKSUMS_FILE
    return StagedVersion(
        files=dict(sorted(files.items())), fingerprint=checksums["fingerprint"], samples=report.samples
    )
