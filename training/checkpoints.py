"""Which checkpoint a resumed run may trust: only a step folder whose every part was written.

torchtune's checkpointer writes ``epoch_<step>/`` (the weights) and then ``recipe_state/recipe_state.pt``
(optimizer, step, data position), both in place. A run killed between the two left step *n*'s weights
beside step *n-k*'s recipe state, and resume loaded them together without a word; killed inside
``recipe_state.pt`` it left no loadable state at all, the previous one overwritten. So once torchtune has
returned, the recipe copies the recipe state into the step folder and then writes :data:`MARKER` there
(each by a temporary name and a rename); resume takes the newest folder with the marker and that
folder's own copy of the state.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

MARKER = "CHECKPOINT_COMPLETE"
"""Written last into ``epoch_<step>/``: JSON ``{"step": n}``."""
RECIPE_STATE = "recipe_state.pt"
_STEP_FOLDER = re.compile(r"^epoch_(\d+)$")


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def mark_complete(output_dir: Path, step: int) -> Path:
    """After torchtune saved step ``step``: its recipe state copied into ``epoch_<step>/``, then the
    marker. Returns the step folder."""
    folder = output_dir / f"epoch_{step}"
    state = output_dir / "recipe_state" / RECIPE_STATE
    _write_atomic(folder / RECIPE_STATE, lambda tmp: shutil.copyfile(state, tmp))
    _write_atomic(folder / MARKER, lambda tmp: tmp.write_text(json.dumps({"step": step}) + "\n"))
    return folder


def latest_complete(output_dir: Path) -> Path | None:
    """The newest ``epoch_<step>`` folder under ``output_dir`` with its marker, or None."""
    steps = []
    for folder in output_dir.glob("epoch_*"):
        match = _STEP_FOLDER.match(folder.name)
        if match and _marked_step(folder) == int(match.group(1)):
            steps.append((int(match.group(1)), folder))
    return max(steps)[1] if steps else None


def _marked_step(folder: Path) -> int | None:
    try:
        return int(json.loads((folder / MARKER).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def incomplete_note(output_dir: Path) -> str:
    """Why there is nothing to resume from: no step folder, or none written to the end."""
    partial = sorted(p.name for p in output_dir.glob("epoch_*") if p.is_dir())
    if not partial:
        return f"no epoch_<step> folder in {output_dir} to resume"
    return (
        f"no complete checkpoint in {output_dir} to resume ({', '.join(partial)}: written before "
        f"checkpoints were marked complete, or cut short; no {MARKER} file)"
    )
