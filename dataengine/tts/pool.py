"""The voice pool: a recipe's voice entries expanded into the voices samples are drawn from.

An entry usually is one voice; a backend may expand one entry into many (Kokoro's ``draw:N`` gives N
blended speakers drawn from the recipe seed). Every entry is checked here, at the start of a build, so a
typo in a voice is one line naming its entry rather than a failure in a worker.
"""

from __future__ import annotations

from collections.abc import Sequence

from dataengine.recipe import RecipeError, VoiceConfig
from dataengine.tts.base import backend_factory


def expand_voices(voices: Sequence[VoiceConfig], seed: int) -> list[VoiceConfig]:
    """Each entry's voices in entry order, their weights summing to the entry's; RecipeError if one is bad."""
    pool: list[VoiceConfig] = []
    for index, voice in enumerate(voices):
        try:
            factory = backend_factory(voice.backend)
            expand = getattr(factory, "expand_voice", None)
            pool += expand(voice, seed) if expand is not None else [voice]
        except (ValueError, ImportError) as exc:
            first = (str(exc).splitlines() or [""])[0]
            raise RecipeError(f"tts.voices.{index} ({voice.backend}): {first}") from None
    return pool
