"""Noise clips for ``noise_refusal`` turns: synthetic colours and silence, and real recordings that ship
in Debian packages (music on hold, event sounds, recorded room tone). Every clip is a seeded function of
(kind, length, seed), 16 kHz mono float32 on the 16-bit grid.

Recordings and their licences (``/usr/share/doc/<package>/copyright``):

- ``music``: asterisk-moh-opsound-g722, five music-on-hold tracks (CC-BY-SA-3.0);
- ``sounds``: sound-theme-freedesktop event sounds (CC-BY-SA-3.0, CC-BY-3.0, GPL-2+; the spoken
  channel announcements are left out: they are speech);
- ``room_tone``: asterisk-core-sounds-en-g722's recorded silences (CC-BY-SA-3.0).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from dataengine.audio.pcm import quantize_pcm16
from dataengine.hashing import unit_draw
from dataengine.sample import AUDIO_SAMPLE_RATE as SR

MOH = Path("/usr/share/asterisk/moh")
FREEDESKTOP = Path("/usr/share/sounds/freedesktop/stereo")
ROOM_TONE = Path("/usr/share/asterisk/sounds/en_US_f_Allison/silence")

RECORDED: dict[str, tuple[str, Path, str]] = {
    "music": ("asterisk-moh-opsound-g722", MOH, "*.g722"),
    "sounds": ("sound-theme-freedesktop", FREEDESKTOP, "*.oga"),
    "room_tone": ("asterisk-core-sounds-en-g722", ROOM_TONE, "*.g722"),
}
"""Recorded kind -> (Debian package, folder, file pattern)."""

SYNTHETIC = ("white", "pink", "brown", "silence")
_SPEECH_SOUNDS = ("audio-channel-",)  # freedesktop files that are spoken words


def missing_packages(kinds: list[str]) -> list[str]:
    """Debian packages the recorded ``kinds`` need that are not installed."""
    return sorted({RECORDED[k][0] for k in kinds if k in RECORDED and not recordings(k)})


@functools.cache
def recordings(kind: str) -> tuple[Path, ...]:
    """The installed files of a recorded kind, sorted (empty when its package is missing)."""
    _, folder, pattern = RECORDED[kind]
    if not folder.is_dir():
        return ()
    return tuple(p for p in sorted(folder.glob(pattern)) if not p.name.startswith(_SPEECH_SOUNDS))


@functools.lru_cache(maxsize=64)
def load_recording(path: Path) -> np.ndarray:
    from dataengine.audio.io import read_audio_file

    audio, _ = read_audio_file(path)
    return audio


def _seed(*parts: object) -> int:
    return int(unit_draw(*parts) * 2**32)


def _level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale to an RMS of ``dbfs`` dB below full scale (peak kept under 0.99)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    if rms <= 0:
        return audio.astype(np.float32)
    scaled = audio * (10 ** (dbfs / 20) / rms)
    peak = float(np.max(np.abs(scaled)))
    return (scaled * (0.99 / peak) if peak > 0.99 else scaled).astype(np.float32)


def _fill(pieces: list[np.ndarray], n: int, gap: np.ndarray) -> np.ndarray:
    out = np.concatenate([p for piece in pieces for p in (piece, gap)])
    return out[:n]


def split_recordings(
    kind: str, seed: int, background_share: float
) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """A recorded kind's files as ``(refusal, background)``: each file goes to the backgrounds by a seeded
    draw on its name (``background_share`` of them on average), so no file is ever both a noise-refusal
    input and the background of a spoken turn; each side keeps at least one file when there are two."""
    files = recordings(kind)
    draws = {path: unit_draw(seed, "noise-split", kind, path.name) for path in files}
    background = [path for path in files if draws[path] < background_share]
    refusal = [path for path in files if draws[path] >= background_share]
    if len(files) >= 2 and not background:  # move the file whose draw came closest
        background.append(refusal.pop(refusal.index(min(refusal, key=draws.__getitem__))))
    elif len(files) >= 2 and not refusal:
        refusal.append(background.pop(background.index(max(background, key=draws.__getitem__))))
    return tuple(sorted(refusal)), tuple(sorted(background))


def make_clip(kind: str, seconds: float, *parts: object, files: tuple[Path, ...] | None = None) -> np.ndarray:
    """One clip of ``kind`` lasting ``seconds``, determined by ``parts`` (the seed and the turn's key);
    a recorded kind draws from ``files`` when given (its refusal side of :func:`split_recordings`)."""
    n = max(1, int(round(seconds * SR)))
    rng = np.random.default_rng(_seed("noise-clip", *parts))
    level = -45.0 + 30.0 * unit_draw("noise-level", *parts)  # -45 … -15 dBFS RMS
    if kind in ("white", "pink", "brown"):
        from dataengine.evaluation.signals import coloured_noise

        audio = _level(coloured_noise(n, kind, _seed("noise-colour", *parts)), level)
    elif kind == "silence":  # a near-silent dither: what a muted microphone records
        audio = _level(rng.standard_normal(n), -75.0 + 10.0 * unit_draw("noise-level", *parts))
    elif kind in RECORDED:
        files = recordings(kind) if files is None else files
        if not files:
            package = RECORDED[kind][0]
            raise RuntimeError(f"noise kind {kind!r} needs the Debian package {package}")
        audio = _level(_recorded(kind, files, n, rng), level)
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    return quantize_pcm16(audio)


def _recorded(kind: str, files: tuple[Path, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "music":  # one track from a seeded offset
        track = load_recording(files[int(rng.integers(len(files)))])
        if len(track) <= n:
            return _fill([track] * (n // max(1, len(track)) + 1), n, np.zeros(0, np.float32))
        start = int(rng.integers(len(track) - n))
        return track[start : start + n]
    pieces: list[np.ndarray] = []  # event sounds with pauses, or room tone, until the length is reached
    total = 0
    while total < n:
        piece = load_recording(files[int(rng.integers(len(files)))])
        pieces.append(piece)
        total += len(piece) + (SR // 2 if kind == "sounds" else 0)
    gap_floor = 1e-4 * rng.standard_normal(SR // 2).astype(np.float32) if kind == "sounds" else np.zeros(0)
    return _fill(pieces, n, gap_floor.astype(np.float32))
