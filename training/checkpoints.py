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
import re
import shutil
import zipfile
from pathlib import Path

from dataengine.atomic import write_atomic

MARKER = "CHECKPOINT_COMPLETE"
"""Written last into ``epoch_<step>/``: JSON ``{"step": n}``."""
RECIPE_STATE = "recipe_state.pt"
_STEP_FOLDER = re.compile(r"^epoch_(\d+)$")


def mark_complete(output_dir: Path, step: int) -> Path:
    """After torchtune saved step ``step``: its recipe state copied into ``epoch_<step>/``, then the
    marker. Returns the step folder."""
    folder = output_dir / f"epoch_{step}"
    state = output_dir / "recipe_state" / RECIPE_STATE
    write_atomic(folder / RECIPE_STATE, lambda tmp: shutil.copyfile(state, tmp))
    write_atomic(folder / MARKER, lambda tmp: tmp.write_text(json.dumps({"step": step}) + "\n"))
    return folder


WEIGHT_SUFFIXES = (".pt", ".bin", ".safetensors", ".pth")


def weight_files(folder: Path) -> list[Path]:
    """The model weights torchtune wrote into a step folder (not the recipe state copy)."""
    return sorted(
        p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.name != RECIPE_STATE and p.is_file()
    )


def latest_complete(output_dir: Path) -> Path | None:
    """The newest ``epoch_<step>`` folder under ``output_dir`` with its marker and intact files (a
    damaged one is passed over, as a cut-short one is), or None."""
    steps = [(int(m.group(1)), p) for p in output_dir.glob("epoch_*") if (m := _STEP_FOLDER.match(p.name))]
    for step, folder in sorted(steps, reverse=True):  # newest first: older folders are not opened
        if folder.is_dir() and _marked_step(folder) == step and intact(folder):
            return folder
    return None


def intact(folder: Path) -> bool:
    """The recipe state and at least one weights file are there and each ends where its own index says
    (a torch zip's central directory, a safetensors header's last offset): a torn or missing file fails
    here in milliseconds, without loading gigabytes."""
    files = weight_files(folder)
    return bool(files) and all(_whole(p) for p in (folder / RECIPE_STATE, *files))


def _whole(path: Path) -> bool:
    try:
        if path.suffix == ".safetensors":
            with path.open("rb") as f:
                size = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(size))
            ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
            return path.stat().st_size == 8 + size + max(ends, default=0)
        with zipfile.ZipFile(path) as archive:  # torch.save's format since 1.6
            return bool(archive.namelist())
    except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile):
        return False


def _marked_step(folder: Path) -> int | None:
    try:
        return int(json.loads((folder / MARKER).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def incomplete_note(output_dir: Path) -> str:
    """Why there is nothing to resume from: no step folder, or none written to the end and intact."""
    partial = sorted(p.name for p in output_dir.glob("epoch_*") if p.is_dir())
    if not partial:
        return f"no epoch_<step> folder in {output_dir} to resume"
    return (
        f"no complete checkpoint in {output_dir} to resume ({', '.join(partial)}: written before "
        f"checkpoints were marked complete, cut short, or damaged; need {MARKER}, {RECIPE_STATE} and "
        "whole weight files)"
    )


def blocked_step_names(output_dir: Path) -> list[str]:
    """``epoch_<n>`` entries that are not folders: torchtune could not write a checkpoint there."""
    return sorted(p.name for p in output_dir.glob("epoch_*") if _STEP_FOLDER.match(p.name) and not p.is_dir())
