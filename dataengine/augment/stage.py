"""The augment stage: real-world conditions on the spoken turns drawn for them, after TTS, before the
audio filters (which then judge the augmented audio like any other: what a condition made unusable is
rejected with its reason).

Which conditions a turn gets and their parameters are seeded draws on (recipe seed, turn key), so the
same recipe gives the same bytes. Each applied condition's parameters are metrics (``aug_*`` columns),
the condition names and the background file are text columns; the clean audio is kept on the turn for
the token-stability measurement (:mod:`dataengine.augment.stability`).
"""

from __future__ import annotations

import numpy as np

from dataengine.audio.pcm import quantize_pcm16
from dataengine.augment import conditions as cond
from dataengine.hashing import unit_draw, weighted_choice
from dataengine.noise.clips import missing_packages, split_recordings
from dataengine.recipe import AUGMENT_CONDITIONS, AugmentConfig, Recipe
from dataengine.sample import RECORDING, TTS, Turn, Unit
from dataengine.stage import TurnStage

PEAK_LIMIT = 0.99
"""A sum of speech and noise louder than this is scaled down (a recorder's limiter), never clipped."""


class AugmentStage(TurnStage):
    """Applies the drawn conditions (room, noise, level, codec, in that order) to a turn marked
    ``augment`` by the plan; keeps the clean audio in ``clean_audio``."""

    name = "augment"
    section = "augment"
    config_model = AugmentConfig
    origins = (TTS, RECORDING)
    metrics = (
        "aug_rt60_s",
        "aug_room_m3",
        "aug_snr_db",
        "aug_level_dbfs",
        "aug_floor_dbfs",
        "aug_rumble_db",
        "aug_codec_kbps",
    )
    columns = {"conditions": "string", "aug_noise_clip": "string", "aug_codec": "string"}
    optional_columns = True
    reads = ("audio", "key", "augment")
    writes = ("audio", "clean_audio")
    code_modules = ("dataengine.augment.conditions", "dataengine.evaluation.codecs", "dataengine.noise.clips")
    packages = ("numpy", "scipy", "pyroomacoustics", "av")

    def __init__(self, config: AugmentConfig, seed: int) -> None:
        self.config = config
        self.seed = seed

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> AugmentStage | None:
        return cls(recipe.augment, recipe.seed) if recipe.augment is not None else None

    def applies(self, turn: Turn) -> bool:
        return turn.augment and turn.origin in self.origins

    def check(self) -> None:
        noise = self.config.noise
        if noise is not None:
            missing = missing_packages(list(noise.kinds))
            if missing:
                raise ValueError(f"augment.noise.kinds need apt-get install -y {' '.join(missing)}")
            for kind in noise.kinds:
                if not split_recordings(kind, self.seed, noise.background_share)[1]:
                    raise ValueError(f"augment.noise: kind {kind!r} has too few recordings to split")
        if self.config.room is not None:
            import pyroomacoustics  # noqa: F401 - a missing package is one line before the build

    def draw(self, key: str, what: str) -> float:
        return unit_draw(self.seed, "augment", key, what)

    def uniform(self, key: str, what: str, bounds: list[float]) -> float:
        return bounds[0] + (bounds[1] - bounds[0]) * self.draw(key, what)

    def chosen(self, key: str) -> list[str]:
        """The conditions this turn gets: each by its probability, at least one."""
        enabled = [name for name in AUGMENT_CONDITIONS if getattr(self.config, name) is not None]
        chosen = [n for n in enabled if self.draw(key, f"on:{n}") < getattr(self.config, n).probability]
        if not chosen:
            chosen = [enabled[weighted_choice([1.0] * len(enabled), self.seed, "augment", key, "one")]]
        return chosen

    def process_turn(self, unit: Unit) -> None:
        turn = unit.turn
        if turn.audio is None:
            raise ValueError("turn has no audio (did TTS run?)")
        clean, key = turn.audio, turn.key
        audio = clean.astype(np.float32)
        chosen = self.chosen(key)
        for name in chosen:
            audio = getattr(self, f"_{name}")(audio, turn)
        peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
        if peak > PEAK_LIMIT:
            audio = audio * (PEAK_LIMIT / peak)
        turn.clean_audio = clean
        turn.audio = quantize_pcm16(audio)
        turn.labels["conditions"] = "+".join(chosen)

    def _seed(self, key: str, what: str) -> int:
        return int(self.draw(key, what) * 2**32)

    def _room(self, audio: np.ndarray, turn: Turn) -> np.ndarray:
        room, key = self.config.room, turn.key
        assert room is not None
        length = self.uniform(key, "room-length", room.length_m)
        dims = (
            length,
            length * self.uniform(key, "room-width", [0.6, 1.0]),
            self.uniform(key, "room-height", [2.5, 3.5]),
        )
        source, mic = self._position(key, "source", dims, 1.5), self._position(key, "mic", dims, 1.2)
        rt60 = self.uniform(key, "rt60", room.rt60_s)
        rir = cond.room_impulse_response(rt60, dims, source, mic)
        turn.metrics["aug_rt60_s"] = rt60
        turn.metrics["aug_room_m3"] = dims[0] * dims[1] * dims[2]
        return cond.reverberate(audio, rir)

    def _position(self, key: str, what: str, dims: tuple[float, ...], height: float) -> tuple[float, ...]:
        """A point 20-80 % of the way along the floor's sides, at ``height`` (a talker's mouth, a mic)."""
        x, y = (d * self.uniform(key, f"{what}-{i}", [0.2, 0.8]) for i, d in enumerate(dims[:2]))
        return (x, y, height)

    def _noise(self, audio: np.ndarray, turn: Turn) -> np.ndarray:
        noise, key = self.config.noise, turn.key
        assert noise is not None
        kind = noise.kinds[weighted_choice([1.0] * len(noise.kinds), self.seed, "augment", key, "noise-kind")]
        files = split_recordings(kind, self.seed, noise.background_share)[1]
        track, path = cond.background(files, len(audio), np.random.default_rng(self._seed(key, "noise-clip")))
        snr = self.uniform(key, "snr", noise.snr_db)
        turn.metrics["aug_snr_db"] = snr
        turn.labels["aug_noise_clip"] = f"{kind}/{path.name}"
        return cond.add_at_snr(audio, track, snr)

    def _level(self, audio: np.ndarray, turn: Turn) -> np.ndarray:
        level, key = self.config.level, turn.key
        assert level is not None
        audio, _ = cond.set_level(audio, self.uniform(key, "level", level.rms_dbfs))
        turn.metrics["aug_level_dbfs"] = cond.dbfs(audio)  # what the gain reached (the peak may cap it)
        if self.draw(key, "rumble-on") < level.rumble_probability:
            rumble_db = self.uniform(key, "rumble", level.rumble_db)
            audio = audio + cond.rumble(
                len(audio), cond.rms(audio) * 10 ** (rumble_db / 20), self._seed(key, "rumble-noise")
            )
            turn.metrics["aug_rumble_db"] = rumble_db
        floor = self.uniform(key, "floor", level.floor_dbfs)
        turn.metrics["aug_floor_dbfs"] = floor
        return audio + cond.noise_floor(len(audio), floor, self._seed(key, "floor-noise"))

    def _codec(self, audio: np.ndarray, turn: Turn) -> np.ndarray:
        codec, key = self.config.codec, turn.key
        assert codec is not None
        names = list(codec.bitrates)
        name = names[weighted_choice([1.0] * len(names), self.seed, "augment", key, "codec")]
        rates = codec.bitrates[name]
        bitrate = rates[weighted_choice([1.0] * len(rates), self.seed, "augment", key, "bitrate")]
        turn.metrics["aug_codec_kbps"] = bitrate / 1000
        turn.labels["aug_codec"] = name
        peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
        if peak > PEAK_LIMIT:  # the encoder takes 16-bit PCM
            audio = audio * (PEAK_LIMIT / peak)
        return cond.codec(audio, name, bitrate)
