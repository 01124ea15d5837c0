"""Named points where a crash-safety test can kill the build, like the failpoints of databases.

``DATAENGINE_CRASH_AT=NAME[:N]`` makes the N-th arrival (default the first) at ``crash_point(NAME)``
kill this process with SIGKILL, as ``kill -9`` or the OOM killer would: no cleanup, no flush. Unset
(always, outside tests) a crash point is a dictionary lookup. Points, in build order:

- ``shard_closed``: a shard was just renamed into place (between shards);
- ``manifest``: the first manifest file is written, the second is not (while writing the manifest);
- ``publish``: the old build is half removed / the new one half moved in (while publishing);
- ``push_copy``: a file of a version was copied into a local push's staging folder (``push`` to a folder);
- ``checkpoint_saved``: torchtune has written a checkpoint's weights and recipe state, the recipe has not
  yet marked it complete (``dataengine.training.checkpoints``);
- ``train_step``: a training step (and the checkpoint due after it) is done
  (``dataengine.training.stream_finetune``).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "DATAENGINE_CRASH_AT"
_arrivals: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Kill this process here if ``DATAENGINE_CRASH_AT`` names this point (and its arrival count)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, _, nth = spec.partition(":")
    if wanted != name:
        return
    _arrivals[name] += 1
    if _arrivals[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
