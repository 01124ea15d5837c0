"""The voice pool: a recipe's voice entries expanded into the voices samples are drawn from.

An entry usually is one voice; a backend may expand one entry into many (Kokoro's ``draw:N`` gives N
blended speakers drawn from the recipe seed; ``clone:N:FOLDER`` gives N voices of a backend that speaks from
a reference recording, one recording each). A bad entry is one line naming it (``tts.voices.N``).
"""

from __future__ import annotations

from collections.abc import Sequence

from dataengine.errors import one_line
from dataengine.recipe import SettingError, VoiceConfig
from dataengine.tts.base import backend_factory
from dataengine.tts.references import expand_clone


def expand_entry(voice: VoiceConfig, seed: int) -> list[VoiceConfig]:
    """The voices one entry stands for (``clone:N:FOLDER``: N reference recordings; else its backend's
    ``expand_voice``); ValueError/ImportError if bad."""
    factory = backend_factory(voice.backend)
    cloned = expand_clone(voice, seed, bool(getattr(factory, "takes_reference", False)))
    if cloned is not None:
        return cloned
    expand = getattr(factory, "expand_voice", None)
    return expand(voice, seed) if expand is not None else [voice]


def expand_voices(voices: Sequence[VoiceConfig], seed: int) -> list[VoiceConfig]:
    """Each entry's voices in entry order, weights summing to the entry's; SettingError if one is bad."""
    pool: list[VoiceConfig] = []
    for index, voice in enumerate(voices):
        try:
            pool += expand_entry(voice, seed)
        except (ValueError, ImportError) as exc:
            raise SettingError(f"tts.voices.{index}", one_line(exc)) from None
    return pool
