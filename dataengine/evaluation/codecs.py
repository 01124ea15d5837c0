"""Lossy codec round trips for the evaluation corpus: PyAV (bundled FFmpeg) and GSM 06.10 via ``toast``.

Each function takes mono float32 audio at ``sr`` and returns what a listener would get back after
encoding and decoding, as mono float32 at ``sr`` (trimmed or zero-padded to the input length).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from dataengine.audio.io import resample, to_mono_float32

GSM_HINT = "GSM needs the 'toast' tool from Debian's libgsm-tools: apt-get install -y libgsm-tools"

# codec name -> (container format, native sample rate or None to keep the input rate)
_PYAV = {
    "mp3": ("mp3", "libmp3lame", None),
    "opus": ("ogg", "libopus", 48_000),
    "amr_nb": ("amr", "libopencore_amrnb", 8_000),
    "mulaw": ("wav", "pcm_mulaw", 8_000),
    "aac": ("adts", "aac", None),
}
CODECS: tuple[str, ...] = (*_PYAV, "gsm", "vorbis")


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, len(audio))] = audio[:n]
    return out


def pyav_roundtrip(audio: np.ndarray, sr: int, codec: str, bitrate: int | None = None) -> np.ndarray:
    """Encode with one of :data:`_PYAV`'s codecs at ``bitrate`` (bits/s) and decode again."""
    import av

    fmt, encoder, codec_sr = _PYAV[codec]
    x = to_mono_float32(audio)
    rate = codec_sr or sr
    pcm = resample(x, sr, rate)
    pcm16 = np.clip(np.round(pcm * 32767.0), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(encoder, rate=rate, layout="mono")
        if bitrate is not None:
            stream.bit_rate = int(bitrate)
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, len(pcm16), frame_size):
            chunk = pcm16[start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    decoded = []
    with av.open(buf, "r") as inp:
        dec_rate = inp.streams.audio[0].rate
        for frame in inp.decode(audio=0):
            arr = frame.to_ndarray().reshape(-1)  # mono: planar (1, n) or packed (1, n)
            if arr.dtype.kind in "iu":
                arr = arr.astype(np.float32) / 32768.0
            decoded.append(arr.astype(np.float32))
    y = np.concatenate(decoded).astype(np.float32) if decoded else np.zeros(0, np.float32)
    return _fit(resample(y, dec_rate, sr), len(x))


def gsm_roundtrip(audio: np.ndarray, sr: int) -> np.ndarray:
    """GSM 06.10 full rate (13 kbps, 8 kHz) with the reference coder's ``toast``/``untoast``."""
    toast = shutil.which("toast")
    if toast is None:
        raise RuntimeError(GSM_HINT)
    x = to_mono_float32(audio)
    pcm16 = np.clip(np.round(resample(x, sr, 8000) * 32767.0), -32768, 32767).astype("<i2")
    with tempfile.TemporaryDirectory(prefix="dataengine-gsm-") as tmp:
        raw = Path(tmp) / "clip"
        raw.write_bytes(pcm16.tobytes())
        gsm = subprocess.run([toast, "-l", "-c", str(raw)], check=True, capture_output=True).stdout
        (Path(tmp) / "clip.gsm").write_bytes(gsm)
        back = subprocess.run(
            [toast, "-d", "-l", "-c", str(Path(tmp) / "clip.gsm")], check=True, capture_output=True
        ).stdout
    y = np.frombuffer(back, dtype="<i2").astype(np.float32) / 32768.0
    return _fit(resample(y, 8000, sr), len(x))


VORBIS_LEVELS: dict[int, float] = {96_000: 0.3, 64_000: 0.5}
"""Ogg Vorbis bitrate (bit/s, nominal) -> libsndfile's ``compression_level`` that gives about it for
speech at 44.1 kHz (measured here: 0.3 -> 85-95 kbps, 0.5 -> 55-65 kbps)."""


def vorbis_roundtrip(audio: np.ndarray, sr: int, bitrate: int) -> np.ndarray:
    """Ogg Vorbis through libsndfile (libvorbis; PyAV's FFmpeg has only its own experimental encoder)."""
    import soundfile as sf

    if bitrate not in VORBIS_LEVELS:
        raise ValueError(f"vorbis bitrate {bitrate}: use one of {sorted(VORBIS_LEVELS)}")
    x = to_mono_float32(audio)
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="OGG", subtype="VORBIS", compression_level=VORBIS_LEVELS[bitrate])
    buf.seek(0)
    y, rate = sf.read(buf, dtype="float32")
    return _fit(resample(y, rate, sr), len(x))


def codec_roundtrip(audio: np.ndarray, sr: int, codec: str, bitrate: int | None = None) -> np.ndarray:
    """Round trip through ``codec`` (one of :data:`CODECS`); ``bitrate`` is ignored by fixed-rate ones."""
    if codec == "gsm":
        return gsm_roundtrip(audio, sr)
    if codec == "vorbis":
        return vorbis_roundtrip(audio, sr, bitrate or 64_000)
    if codec not in _PYAV:
        raise ValueError(f"unknown codec {codec!r}; known: {', '.join(CODECS)}")
    return pyav_roundtrip(audio, sr, codec, bitrate)
