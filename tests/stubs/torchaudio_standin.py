"""Test-only stand-in for ``torchaudio`` and ``torio``, so that ``whisperspeech.vq_stoks``, ``vocos`` and
``encodec`` import, and ``torchcodec`` for ``coqui-tts`` (its ``import TTS`` checks both are installed).

No torchaudio build works with CPU torch 2.13 (see ``shared/notes/stack.md``). ``whisperspeech`` imports
torchaudio and ``torio.io._streaming_media_decoder`` at module import time but its tensor encode path
(``RQBottleneckTransformer.encode_audio(tensor)``) never calls them. The stand-in provides only the names
touched at import time; every torchaudio function raises, so a test that reached one would fail loudly
rather than run substitute code. The product (``dataengine``) never imports this module.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

_NAMES = ("torchaudio", "torchaudio.transforms", "torchaudio.functional", "torchaudio.functional.functional",
          "torio", "torio.io", "torio.io._streaming_media_decoder", "torchcodec")  # fmt: skip


def _unavailable(name: str):
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{name} is not available: tests use a torchaudio stand-in (import only)")

    return fail


def _modules() -> dict[str, types.ModuleType]:
    mods = {name: types.ModuleType(name) for name in _NAMES}
    for name, module in mods.items():  # coqui-tts checks importlib.util.find_spec("torchaudio"/"torchcodec")
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    ta = mods["torchaudio"]
    ta.load = _unavailable("torchaudio.load")  # type: ignore[attr-defined]
    ta.save = _unavailable("torchaudio.save")  # type: ignore[attr-defined]
    ta.transforms = mods["torchaudio.transforms"]  # type: ignore[attr-defined]
    ta.functional = mods["torchaudio.functional"]  # type: ignore[attr-defined]
    mods["torchaudio.transforms"].Resample = _unavailable("torchaudio.transforms.Resample")  # type: ignore[attr-defined]
    mods["torchaudio.functional"].resample = _unavailable("torchaudio.functional.resample")  # type: ignore[attr-defined]
    # vocos.heads imports these mel helpers (only its IMDCTCosHead calls them)
    inner = mods["torchaudio.functional.functional"]
    for name in ("_hz_to_mel", "_mel_to_hz"):
        setattr(inner, name, _unavailable(f"torchaudio.functional.functional.{name}"))
    mods["torchaudio.functional"].functional = inner  # type: ignore[attr-defined]
    decoder = mods["torio.io._streaming_media_decoder"]
    for cls in ("SourceStream", "SourceAudioStream", "SourceVideoStream"):
        setattr(decoder, cls, _unavailable(f"torio {cls}"))
    decoder._parse_si = _unavailable("torio _parse_si")  # type: ignore[attr-defined]
    mods["torio"].io = mods["torio.io"]  # type: ignore[attr-defined]
    mods["torio.io"]._streaming_media_decoder = decoder  # type: ignore[attr-defined]
    return mods


@contextmanager
def torchaudio_standin() -> Iterator[None]:
    """Install the stand-in in ``sys.modules`` for the duration of the block, then remove it again.

    Modules imported inside the block keep their reference; nothing else sees a fake torchaudio.
    """
    saved = {name: sys.modules.get(name) for name in _NAMES}
    sys.modules.update(_modules())
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        importlib.invalidate_caches()


def import_vq_stoks() -> types.ModuleType:
    """Import ``whisperspeech.vq_stoks`` with the stand-in in place; returns the module."""
    with torchaudio_standin():
        return importlib.import_module("whisperspeech.vq_stoks")
