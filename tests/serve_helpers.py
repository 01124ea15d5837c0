"""Start ``dataengine serve`` as a real process on a free port, for the HTTP and browser tests."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STARTUP_S = 60


@contextmanager
def serving(out: Path) -> Iterator[str]:
    """The base URL (``http://127.0.0.1:PORT``) of ``dataengine serve OUT --port 0`` while it runs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataengine.cli", "serve", str(out), "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    timer = threading.Timer(STARTUP_S, proc.kill)
    timer.start()
    try:
        line = proc.stderr.readline()
        timer.cancel()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if match is None:
            raise RuntimeError(f"dataengine serve did not start: {line!r} {proc.stderr.read()[-2000:]!r}")
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining its log
        yield match.group(1)
    finally:
        timer.cancel()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
