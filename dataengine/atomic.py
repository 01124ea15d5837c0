"""Write a file so that readers see the old one or the whole new one, never a part."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], object], mode: int | None = None) -> None:
    """``write`` fills a temporary file beside ``path`` (its argument), which is then renamed over
    ``path``; on any error, Ctrl-C included, the temporary file is removed and ``path`` is untouched.
    ``mode``: the file's permissions (``mkstemp`` makes 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
