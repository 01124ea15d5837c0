"""Byte ranges of a served member and a spectrogram PNG of a FLAC member."""

from __future__ import annotations

import io
import re
import struct
import zlib

import numpy as np

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end inclusive)`` of a single-range ``Range: bytes=`` header, None for the whole member;
    raises ValueError for a range that cannot be satisfied."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise ValueError(header)
    first, last = match.groups()
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0:
            raise ValueError(header)
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError(header)
    return start, end


# --- spectrogram ------------------------------------------------------------------------------------

N_FFT = 512
HOP = 160
"""10 ms frames at 16 kHz."""
DYNAMIC_RANGE_DB = 80.0
MAX_WIDTH = 1600
_ANCHORS = np.array(  # dark blue -> purple -> orange -> pale yellow
    [[8, 8, 32], [60, 15, 110], [150, 40, 120], [230, 90, 60], [252, 200, 90], [252, 252, 190]], dtype=float
)


def _palette() -> np.ndarray:
    x = np.linspace(0, len(_ANCHORS) - 1, 256)
    return np.stack([np.interp(x, np.arange(len(_ANCHORS)), _ANCHORS[:, c]) for c in range(3)], 1).astype(
        np.uint8
    )


PALETTE = _palette()


def spectrogram_png(flac: bytes) -> bytes:
    """A log-magnitude spectrogram (0-8 kHz bottom to top, 10 ms per column, 80 dB range) as a PNG."""
    import soundfile as sf

    audio, _ = sf.read(io.BytesIO(flac), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if len(audio) < N_FFT:
        audio = np.pad(audio, (0, N_FFT - len(audio)))
    frames = 1 + (len(audio) - N_FFT) // HOP
    window = np.hanning(N_FFT).astype(np.float32)
    stride = audio.strides[0]
    view = np.lib.stride_tricks.as_strided(audio, (frames, N_FFT), (HOP * stride, stride))
    power = np.abs(np.fft.rfft(view * window, axis=1)) ** 2
    db = 10 * np.log10(np.maximum(power, 1e-12))
    top = db.max()
    level = np.clip((db - (top - DYNAMIC_RANGE_DB)) / DYNAMIC_RANGE_DB, 0, 1)
    if frames > MAX_WIDTH:
        level = level[np.linspace(0, frames - 1, MAX_WIDTH).astype(int)]
    image = PALETTE[(level.T[::-1] * 255).astype(np.uint8)]  # rows: high frequencies first
    return png_rgb(image)


def png_rgb(image: np.ndarray) -> bytes:
    """PNG bytes of an ``(height, width, 3)`` uint8 image."""
    height, width, _ = image.shape
    raw = b"".join(b"\0" + image[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
