"""Files named ``org/repo:path`` on the Hugging Face Hub, read from the local huggingface_hub cache first."""

from __future__ import annotations

from pathlib import Path


def hub_file(repo: str, filename: str, what: str, error: type[Exception]) -> Path:
    """The local path of ``filename`` in ``repo``: the cache first (no network round trip, no retries when
    it is there), then the Hub; anything that fails (offline, a missing repo or file, the network) is one
    ``error`` naming ``what`` and the command that fetches it."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or a broken cache entry): try the Hub below
        pass
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as exc:  # noqa: BLE001 - offline, missing repo/file, network: all one message
        raise error(
            f"{what} {f'{repo}:{filename}'!r} is not available ({type(exc).__name__}); fetch it with "
            f"`hf download {repo} {filename}`"
        ) from None
