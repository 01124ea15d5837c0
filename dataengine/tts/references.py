"""Voice cloning from a folder of reference recordings: one pool entry, N voices, one reference each.

``voice: "clone:N:FOLDER"`` on a backend that speaks in the voice of a reference clip (WhisperSpeech:
speaker embedding of the clip; Coqui XTTS: ``speaker_wav``) becomes N voices, each with one audio file of
FOLDER as its ``voice``, drawn from the recipe seed. A file's place in the draw depends only on (seed, its
name), so adding recordings to the folder keeps the speakers already drawn unless a new file ranks first.
Kokoro takes a style table, not audio: it cannot clone (no style is derived from a recording here).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from dataengine.recipe import VoiceConfig

PREFIX = "clone:"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".g722")


def parse_clone(text: str) -> tuple[int, Path] | None:
    """``clone:N:FOLDER`` -> (N, FOLDER); None for any other voice; ValueError for a malformed one."""
    if not text.startswith(PREFIX):
        return None
    count, sep, folder = text.removeprefix(PREFIX).partition(":")
    if not sep or not count.isdigit() or int(count) < 1 or not folder:
        raise ValueError(f"voice {text!r}: write clone:N:FOLDER (N >= 1 voices, one recording each)")
    return int(count), Path(folder)


def reference_files(folder: Path) -> list[Path]:
    """The audio files directly in ``folder``, by name; ValueError when there is none."""
    if not folder.is_dir():
        raise ValueError(f"reference folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ValueError(f"reference folder {folder} holds no audio file ({', '.join(AUDIO_SUFFIXES)})")
    return files


def draw_references(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` distinct recordings of ``folder``, in draw order, from ``seed``."""
    files = reference_files(folder)
    if count > len(files):
        raise ValueError(f"cannot draw {count} reference voices from {len(files)} recordings in {folder}")

    def rank(path: Path) -> bytes:
        return hashlib.sha256(f"clone:{seed}:{path.name}".encode()).digest()

    return sorted(files, key=rank)[:count]


def expand_clone(voice: VoiceConfig, seed: int, takes_reference: bool) -> list[VoiceConfig] | None:
    """The voices of a ``clone:`` entry (None: not one); ValueError for a backend that takes no audio."""
    parsed = parse_clone(voice.voice)
    if parsed is None:
        return None
    if not takes_reference:
        hint = " (Kokoro takes a style table: use a blend or draw:N)" if voice.backend == "kokoro" else ""
        raise ValueError(f"backend {voice.backend!r} does not speak from a reference recording{hint}")
    count, folder = parsed
    weight = voice.weight / count
    return [
        voice.model_copy(update={"voice": str(path), "weight": weight})
        for path in draw_references(folder, count, seed)
    ]
