"""The tokenizer's user-facing error."""

from __future__ import annotations


class TokenizerError(RuntimeError):
    """A tokenizer checkpoint or Whisper model that cannot be used; the message is one line for the user."""
