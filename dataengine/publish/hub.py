"""Publishing to a Hugging Face Hub dataset repo with the real ``huggingface_hub`` client.

One version = one commit on ``main`` holding the whole version (shards, manifest, card, plots,
``checksums.json``), then the tag ``vX.Y.Z`` on that commit. The tag is the visible version: a push
interrupted before it leaves no tag, and the next run finishes (LFS objects already on the server are
not sent again; a commit that already landed is tagged as is).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from dataengine.publish import PublishError
from dataengine.publish.files import CHECKSUMS_FILE
from dataengine.publish.local import install_verified
from dataengine.publish.stage import check_version, stage_version
from dataengine.redact import redact

log = logging.getLogger(__name__)
REPO_TYPE = "dataset"
OFFICIAL_ENDPOINT = "https://huggingface.co"


def _client(endpoint: str | None) -> Any:
    """An ``HfApi``; a custom endpoint uses the plain LFS protocol (no Xet storage behind it)."""
    if endpoint and endpoint.rstrip("/") != OFFICIAL_ENDPOINT:
        os.environ["HF_HUB_DISABLE_XET"] = "1"
        from huggingface_hub import constants

        constants.HF_HUB_DISABLE_XET = True
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint.rstrip("/") if endpoint else None, library_name="dataengine")


def _hub_error(repo_id: str, what: str, exc: Exception) -> PublishError:
    """One line naming the step and the server's answer (never the request headers, so never the token;
    a password in the endpoint URL is redacted)."""
    response = getattr(exc, "response", None)
    status = f"HTTP {response.status_code}" if response is not None else type(exc).__name__
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return PublishError(redact(f"{repo_id}: {what} failed ({status}): {detail}")[:400])


def _hub_errors() -> tuple[type[Exception], ...]:
    """What the client raises for a refused request, an unreachable server or a malformed answer."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    return (HfHubHTTPError, httpx2.HTTPError, OSError, RuntimeError, ValueError)


def _remote_checksums(api: Any, repo_id: str, revision: str, cache: Path) -> dict[str, Any] | None:
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    try:
        path = api.hf_hub_download(
            repo_id, CHECKSUMS_FILE, repo_type=REPO_TYPE, revision=revision, cache_dir=str(cache)
        )
    except (EntryNotFoundError, RevisionNotFoundError):
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def push_hub(
    out: Path, repo_id: str, version: str, *, endpoint: str | None = None, private: bool = False
) -> str:
    """Publish build ``out`` to ``repo_id`` as tag ``version``; return a one-line account."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, get_token

    check_version(version)
    api = _client(endpoint)
    if not (api.token or get_token()):
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    with tempfile.TemporaryDirectory(prefix="dataengine-push-") as workdir:
        staged = stage_version(out, Path(workdir), repo_id, version)
        step = "create_repo"
        try:
            api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
            step = "list_repo_refs"
            refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
            cache = Path(workdir) / "cache"
            if version in {t.name for t in refs.tags}:
                step = f"reading {version}"
                remote = _remote_checksums(api, repo_id, version, cache)
                remote_fp = remote["fingerprint"] if remote else None
                if remote_fp == staged.fingerprint:
                    return (
                        f"{repo_id}@{version} already holds this build (fingerprint {remote_fp[:12]}): "
                        "nothing to do"
                    )
                raise PublishError(
                    f"{repo_id}: tag {version} already holds a different build (fingerprint "
                    f"{(remote_fp or 'unknown')[:12]}, this build {staged.fingerprint[:12]}); "
                    "publish it under a new version"
                )
            main = {b.name: b.target_commit for b in refs.branches}.get("main")
            step = "reading main"
            on_main = _remote_checksums(api, repo_id, "main", cache) if main else None
            same = on_main and (on_main.get("fingerprint"), on_main.get("version")) == (
                staged.fingerprint,
                version,
            )
            if same and main:
                commit, note = main, " (its commit was already on main: tagged it)"
            else:
                step = "list_repo_files"
                existing = (
                    set(api.list_repo_files(repo_id, repo_type=REPO_TYPE, revision="main")) if main else set()
                )
                ops: list[Any] = [CommitOperationAdd(rel, str(path)) for rel, path in staged.files.items()]
                ops += [
                    CommitOperationDelete(p)
                    for p in sorted(existing - set(staged.files))
                    if p != ".gitattributes"
                ]
                step = "create_commit"
                info = api.create_commit(
                    repo_id,
                    ops,
                    repo_type=REPO_TYPE,
                    revision="main",
                    parent_commit=main,
                    commit_message=f"dataengine {version}: {staged.samples} samples",
                    commit_description=f"fingerprint {staged.fingerprint}",
                )
                commit, note = info.oid, ""
            step = "create_tag"
            api.create_tag(
                repo_id,
                tag=version,
                revision=commit,
                repo_type=REPO_TYPE,
                tag_message=f"dataengine build {staged.fingerprint}",
            )
        except PublishError:
            raise
        except _hub_errors() as exc:
            raise _hub_error(repo_id, step, exc) from None
    return (
        f"published {repo_id}@{version}: {staged.samples} samples, {len(staged.files)} files, "
        f"commit {commit[:12]}{note}"
    )


def pull_hub(repo_id: str, version: str, dest: Path, *, endpoint: str | None = None) -> Path:
    """Download tag ``version`` of ``repo_id`` and verify it before it appears at ``dest``."""
    check_version(version)
    api = _client(endpoint)
    try:
        tags = {t.name for t in api.list_repo_refs(repo_id, repo_type=REPO_TYPE).tags}
        if version not in tags:
            raise PublishError(f"{repo_id}: no version {version} (tags: {', '.join(sorted(tags)) or 'none'})")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{dest.name}-download-", dir=dest.parent) as tmp:
            folder = api.snapshot_download(repo_id, repo_type=REPO_TYPE, revision=version, local_dir=tmp)
            return install_verified(Path(folder), dest)
    except PublishError:
        raise
    except _hub_errors() as exc:
        raise _hub_error(repo_id, "download", exc) from None
