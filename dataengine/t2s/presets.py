"""Named T2S checkpoints and the tokenizer each was trained on (nothing heavy: the recipe imports it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class T2SPreset:
    name: str
    checkpoint: str
    """Hub reference ``org/repo:file``."""
    tokenizer: str
    """The tokenizer preset (:data:`dataengine.tokenizer.presets.PRESETS`) it was trained on."""
    note: str


T2S_PRESETS: dict[str, T2SPreset] = {
    p.name: p
    for p in (
        T2SPreset(
            "t2s-v1.9-medium-7lang",
            "collabora/whisperspeech:t2s-v1.9-medium-7lang.model",
            "ichigo-v3-7lang",
            "the T2S Ichigo made sound tokens with (whisper-vq-stoks-v3-7lang); v1.95 broke them "
            "(janhq/ichigo#73)",
        ),
    )
}
"""Known T2S checkpoints and the tokenizer each one was trained on (from the Ichigo issues; the files
themselves could not be downloaded here)."""
