"""espeak-ng TTS backend: the Debian ``espeak-ng`` binary, a cheap, robotic, fully offline second voice.

The text goes in on stdin (never on the command line, so it cannot be read as an option); ``--stdout``
gives a 16-bit WAV at 22,050 Hz. Output is deterministic for the same binary, voice, speed and pitch.
``length_scale`` maps to words per minute as ``175 / length_scale`` (espeak-ng's default rate is 175).
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import soundfile as sf

from dataengine.recipe import VoiceConfig
from dataengine.tts.base import TTSBackend

_INSTALL_HINT = "apt-get install espeak-ng"
DEFAULT_WPM = 175
TIMEOUT_S = 120


def espeak_binary() -> str:
    """Path of the ``espeak-ng`` executable; ImportError with the install hint if it is not on PATH."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise ImportError(f"the 'espeak' TTS backend needs the espeak-ng program: {_INSTALL_HINT}")
    return path


def words_per_minute(length_scale: float) -> int:
    """espeak-ng ``-s`` for a recipe ``length_scale`` (> 1 is slower)."""
    return max(80, min(500, round(DEFAULT_WPM / length_scale)))


class EspeakBackend(TTSBackend):
    """One espeak-ng voice (``en-us``, ``en-gb``, ``en-us+f3``…) at one speed and pitch."""

    def __init__(self, voice: VoiceConfig) -> None:
        if voice.backend != "espeak":
            raise ValueError(f"EspeakBackend got a voice for backend {voice.backend!r}")
        self.voice = voice
        self.binary = espeak_binary()
        self._version: str | None = None
        self._checked = False

    @property
    def sample_rate(self) -> int:
        return 22050

    def command(self) -> list[str]:
        """The espeak-ng argument list (text comes on stdin)."""
        wpm = words_per_minute(self.voice.length_scale)
        args = [self.binary, "--stdout", "-v", self.voice.voice, "-s", str(wpm)]
        if self.voice.pitch is not None:
            args += ["-p", str(self.voice.pitch)]
        return args

    @property
    def version(self) -> str:
        if self._version is None:
            out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False)
            release = out.stdout.split(":")[1].split()[0] if ":" in out.stdout else out.stdout.strip()
            pitch = "default" if self.voice.pitch is None else self.voice.pitch
            self._version = (
                f"espeak-ng=={release};voice={self.voice.voice}"
                f";wpm={words_per_minute(self.voice.length_scale)};pitch={pitch}"
            )
        return self._version

    def check(self) -> None:
        """The voice exists: one letter spoken (a short probe)."""
        self.load()

    def load(self) -> None:
        """Check that the voice exists (a short probe), so a typo fails before the build starts."""
        if not self._checked:
            self._run("a")
            self._checked = True

    def _run(self, text: str) -> np.ndarray:
        proc = subprocess.run(
            self.command(), input=text.encode("utf-8"), capture_output=True, timeout=TIMEOUT_S, check=False
        )
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        if proc.returncode != 0 or not proc.stdout:
            detail = message[0] if message else f"exit code {proc.returncode}"
            raise ValueError(f"espeak-ng voice {self.voice.voice!r}: {detail}")
        audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
        if sr != self.sample_rate:
            raise ValueError(f"espeak-ng returned {sr} Hz audio, expected {self.sample_rate}")
        return np.ascontiguousarray(audio if audio.ndim == 1 else audio.mean(axis=1), dtype=np.float32)

    def synthesize(self, text: str) -> np.ndarray:
        if not text.strip():
            return np.zeros(0, dtype=np.float32)
        self.load()
        return self._run(text)
