"""Named WhisperVQ checkpoints: the embedded default and the official WhisperSpeech ones.

A preset name can stand wherever a checkpoint reference can (``tokenizer.checkpoint`` in a recipe,
``--checkpoint`` on the command line). This module imports nothing heavy, so the recipe can check names.
The official checkpoints are not shipped: they load through the Hugging Face cache (``hf download``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenizerPreset:
    """A known WhisperVQ checkpoint and what it is documented to be."""

    name: str
    checkpoint: str
    """``default`` (embedded) or a Hub reference ``org/repo:file``."""
    whisper: str
    """The openai-whisper model its encoder features come from."""
    codebook_size: int
    """Codes real audio maps to; WhisperSpeech checkpoints add one mask code for padding."""
    tokens_per_second: float
    languages: str
    note: str

    def describe(self) -> str:
        return (
            f"{self.name}: {self.checkpoint} | whisper {self.whisper} | "
            f"{self.codebook_size} codes + 1 mask | {self.tokens_per_second:g} tokens/s | "
            f"{self.languages} | {self.note}"
        )


DEFAULT_ASSET = "whispervq-tiny.en-512c.pt"
"""The embedded codebook (``dataengine/assets/``), the checkpoint ``default`` names."""

PRESETS: dict[str, TokenizerPreset] = {
    p.name: p
    for p in (
        TokenizerPreset(
            "default",
            "default",
            "tiny.en",
            512,
            25.0,
            "en",
            "embedded; codebook fitted by `dataengine tokenizer fit`; its tokens are not Ichigo's",
        ),
        TokenizerPreset(
            "ichigo-v3-7lang",
            "WhisperSpeech/WhisperSpeech:whisper-vq-stoks-v3-7lang.model",
            "medium",
            512,
            25.0,
            "7 languages",
            "the tokenizer Ichigo was trained with (sound tokens <|sound_0000|>..<|sound_0512|>)",
        ),
        TokenizerPreset(
            "whisperspeech-medium-en+pl",
            "collabora/spear-tts-pytorch:whisper-vq-stoks-medium-en+pl.model",
            "medium",
            512,
            25.0,
            "en, pl",
            "whisperspeech's default load_model() reference; older WhisperSpeech/Ichigo sets",
        ),
    )
}
"""Preset name -> preset. Sizes of the official files follow whisperspeech 0.8.9 (``make_model``
``medium-2d-512c-dim64``, ``stoks_per_sec = 1500 // downsample // 30``); the files themselves could not be
downloaded here, so these numbers were not read from them."""

WHISPER_SIZES = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
    "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo",
)  # fmt: skip
"""openai-whisper model names (``whisper.available_models()`` in openai-whisper 20250625)."""
