"""The speaker stage: one speaker embedding per spoken turn with audio (TTS speech and recordings).

Cacheable (the embedding depends only on the audio, the encoder's weights and the libraries). It rejects
nothing itself: the voice-drift bound needs every earlier kept turn of the voice, so the ordered writer
applies it (:mod:`dataengine.speaker.drift`) in the build's one deterministic order.
"""

from __future__ import annotations

from pathlib import Path

from dataengine.recipe import Recipe, SettingError, SpeakerConfig
from dataengine.sample import RECORDING, TTS, Turn, Unit
from dataengine.speaker.encoder import PACKAGES, SpeakerEncoder, weights_file
from dataengine.stage import TurnStage


class SpeakerStage(TurnStage):
    name = "speaker"
    section = "speaker"
    config_model = SpeakerConfig
    origins = (TTS, RECORDING)
    reject_reasons = ("voice_drift",)
    cacheable = True
    reads = ("audio",)
    writes = ("speaker_embedding",)
    code_modules = ("dataengine.speaker.encoder",)
    packages = PACKAGES

    def __init__(self, config: SpeakerConfig) -> None:
        self.config = config
        self.encoder = SpeakerEncoder()

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> SpeakerStage | None:
        return cls(recipe.speaker) if recipe.speaker.enabled else None

    def check(self) -> None:
        try:
            weights_file()
        except ImportError as exc:
            raise SettingError("speaker.enabled", str(exc)) from None

    def applies(self, turn: Turn) -> bool:
        return super().applies(turn) and turn.audio is not None and len(turn.audio) > 0

    def setup(self) -> None:
        self.encoder.load()

    def cache_settings(self) -> object:
        return {}  # the bound and the storage choice do not change an embedding

    def model_files(self) -> tuple[Path, ...]:
        return (weights_file(),)

    def process_turn(self, unit: Unit) -> None:
        unit.turn.speaker_embedding = self.encoder.embed(unit.turn.audio)
