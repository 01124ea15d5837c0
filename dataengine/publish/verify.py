"""Check a build folder against its own manifest: every sample's hash recomputed from the shards."""

from __future__ import annotations

import json
import tarfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from dataengine.manifest import ManifestError, open_manifest, require_build
from dataengine.publish import PublishError
from dataengine.publish.files import CHECKSUMS_FILE, file_sha256, fingerprint, read_checksums
from dataengine.publish.seal import check_build_info
from dataengine.writers.members import members_digest


@dataclass
class VerifyReport:
    out: Path
    samples: int = 0
    shards: int = 0
    files: int = 0
    fingerprint: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        checked = f"{self.samples} samples in {self.shards} shard(s)"
        if self.files:
            checked += f", {self.files} file checksum(s)"
        if self.ok:
            return f"verified {self.out}: {checked} match the manifest"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"{self.out}: verification failed: {self.problems[0]}{more}"


def shard_digests(tar_path: Path) -> dict[str, str]:
    """Key -> ``members_digest`` of that key's members, read straight from a tar shard."""
    members: dict[str, dict[str, bytes]] = defaultdict(dict)
    with tarfile.open(tar_path, "r:") as tar:
        for info in tar:
            if not info.isfile():
                continue
            name = info.name.rsplit("/", 1)[-1]
            key, _, ext = name.partition(".")
            handle = tar.extractfile(info)
            assert handle is not None
            members[key][ext] = handle.read()
    return {key: members_digest(parts) for key, parts in members.items()}


def _manifest_rows(out: Path) -> list[tuple[str, str, str]]:
    con = open_manifest(out)
    try:
        return con.execute("SELECT shard, key, sha256 FROM samples ORDER BY shard, key").fetchall()
    finally:
        con.close()


def _check_checksums(out: Path, report: VerifyReport) -> None:
    checksums = read_checksums(out / CHECKSUMS_FILE)
    for rel, expected in sorted(checksums["files"].items()):
        path = out / rel
        if not path.is_file():
            report.problems.append(f"{rel}: missing")
        elif path.stat().st_size != expected["size"] or file_sha256(path) != expected["sha256"]:
            report.problems.append(f"{rel}: sha256 differs from {CHECKSUMS_FILE}")
        report.files += 1
    if fingerprint(checksums["files"]) != checksums["fingerprint"]:
        report.problems.append(f"{CHECKSUMS_FILE}: fingerprint does not match its file list")
    report.fingerprint = checksums["fingerprint"]


def verify_build(out: Path) -> VerifyReport:
    """Recompute every sample's hash from the shards and compare with the manifest, check every file
    against the digests sealed into ``build.json`` (and against ``checksums.json`` when the folder has
    one). Problems are listed, not raised; a folder that is not a build raises PublishError."""
    out = Path(out)
    report = VerifyReport(out)
    try:
        require_build(out)
    except ManifestError as exc:
        raise PublishError(str(exc)) from None
    sealed = check_build_info(out)
    try:
        rows = _manifest_rows(out)
    except ManifestError as exc:  # e.g. a manifest file replaced by one that is not a manifest
        report.problems += [*sealed, str(exc)]
        return report
    expected: dict[str, dict[str, str]] = defaultdict(dict)
    for shard, key, sha in rows:
        expected[shard][key] = sha
    report.samples = len(rows)
    on_disk = sorted(p.name for p in (out / "shards").glob("*.tar")) if (out / "shards").is_dir() else []
    build_json = out / "build.json"
    if build_json.is_file():
        listed = json.loads(build_json.read_text(encoding="utf-8")).get("shards", [])
        if sorted(listed) != on_disk:
            report.problems.append(f"shards on disk {on_disk} differ from build.json {sorted(listed)}")
    for name in sorted(set(expected) | set(on_disk)):
        if name not in on_disk:
            report.problems.append(f"shards/{name}: missing ({len(expected[name])} samples in the manifest)")
            continue
        report.shards += 1
        try:
            actual = shard_digests(out / "shards" / name)
        except (tarfile.TarError, OSError) as exc:
            report.problems.append(f"shards/{name}: unreadable tar ({exc})")
            continue
        want = expected.get(name, {})
        for key in sorted(set(want) | set(actual)):
            if key not in actual:
                report.problems.append(f"shards/{name}: sample {key} is in the manifest but not in the shard")
            elif key not in want:
                report.problems.append(f"shards/{name}: sample {key} is not in the manifest")
            elif actual[key] != want[key]:
                report.problems.append(f"shards/{name}: sample {key} hash differs from the manifest")
    report.problems += sealed
    if (out / CHECKSUMS_FILE).is_file():
        _check_checksums(out, report)
    return report
