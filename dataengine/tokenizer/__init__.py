"""WhisperVQ sound tokens: Whisper encoder + vector-quantizer codebook, and the pipeline stage using them.

Imports are lazy so that light modules (``presets``, ``errors``) load without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["TokenizerError", "WhisperVQ", "load_whispervq"]

_WHERE = {
    "TokenizerError": "dataengine.tokenizer.errors",
    "WhisperVQ": "dataengine.tokenizer.whispervq",
    "load_whispervq": "dataengine.tokenizer.whispervq",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'dataengine.tokenizer' has no attribute {name!r}")
