"""The TTS stage: pick a voice per turn (seeded, layout-independent), speak the turn's text, resample."""

from __future__ import annotations

from collections.abc import Sequence

from dataengine.audio.io import resample
from dataengine.audio.pcm import quantize_pcm16
from dataengine.errors import one_line
from dataengine.hashing import weighted_choice
from dataengine.recipe import Recipe, SettingError, TTSConfig, VoiceConfig
from dataengine.sample import AUDIO_SAMPLE_RATE, TTS, Unit
from dataengine.stage import TurnStage
from dataengine.tts.base import TTSBackend, backend_module, make_backend
from dataengine.tts.pool import expand_entry, expand_voices


def choose_voice(voices: Sequence[VoiceConfig], seed: int, key: str) -> VoiceConfig:
    """Weighted choice of a voice for one turn; the same (seed, key) always gets the same voice."""
    if not voices:
        raise ValueError("no voices to choose from")
    return voices[weighted_choice([v.weight for v in voices], seed, "voice", key)]


class TTSStage(TurnStage):
    """Speaks a TTS turn's ``text`` in one of the recipe's voices; sets the turn's ``voice`` and ``audio``.

    Every spoken turn of a conversation gets its own voice draw (by its ``key``). Audio is resampled to
    16 kHz float32; a backend that returns nothing drops the sample as ``tts_failed``.
    """

    name = "tts"
    section = "tts"
    config_model = TTSConfig
    origins = (TTS,)
    reject_reasons = ("tts_failed",)
    cacheable = True
    reads = ("key", "text")  # the voice is drawn from (seed, key)
    writes = ("voice", "audio")
    packages = ("numpy", "soxr")  # resampling; each backend's version names its engine and model

    @property
    def code_modules(self) -> tuple[str, ...]:  # type: ignore[override]
        """The interface, the pool expansion, the modules of the backends the voice pool uses, resampling
        and the voice draw."""
        backends = sorted({backend_module(voice.backend) for voice in self.config.audio_voices})
        return (
            "dataengine.tts.base",
            "dataengine.tts.pool",
            "dataengine.tts.references",
            *backends,
            "dataengine.audio.io",
            "dataengine.audio.pcm",
            "dataengine.hashing",
        )

    def __init__(self, config: TTSConfig | None = None, seed: int = 0) -> None:
        self.config = config or TTSConfig()
        self.seed = seed
        self.voices = expand_voices(self.config.audio_voices, seed)
        """The pool samples draw from: the recipe's entries (``backend: t2s`` ones aside: their turns get
        T2S tokens, not audio), each expanded by its backend."""
        self.backends: dict[str, TTSBackend] = {}

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> TTSStage | None:
        if not recipe.tts.audio_voices:
            return None  # a pool of t2s entries only: no turn is spoken by TTS
        return cls(recipe.tts, recipe.seed)

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "backends": {}}

    def check(self) -> None:
        """Every voice of every entry (a ``draw:N`` entry's N speakers too) can be built (package, voice
        files, model name) and passes its backend's check."""
        for n, entry in enumerate(self.config.voices):
            if entry.t2s:
                continue
            try:
                for voice in expand_entry(entry, self.seed):
                    make_backend(voice).check()
            except (ValueError, ImportError, OSError) as exc:
                raise SettingError(f"tts.voices.{n}", one_line(exc)) from None

    def setup(self) -> None:
        for voice in self.voices:
            if voice.name not in self.backends:
                backend = make_backend(voice)
                backend.load()
                self.backends[voice.name] = backend

    def process_turn(self, unit: Unit) -> None:
        if not self.backends:
            self.setup()
        turn = unit.turn
        voice = choose_voice(self.voices, self.seed, turn.key)
        backend = self.backends[voice.name]
        turn.voice = voice.name
        audio = backend.synthesize(turn.text)
        if len(audio) == 0:
            unit.drop(self.name, "tts_failed", detail="backend returned no audio")
            return
        # On the 16-bit grid the shards store, so later stages see exactly the audio a user reads back.
        turn.audio = quantize_pcm16(resample(audio, backend.sample_rate, AUDIO_SAMPLE_RATE))

    def cache_settings(self) -> object:
        """Seed, voice pool and each backend's version (engine, model file hashes, settings)."""
        versions = [make_backend(voice).version for voice in self.voices]
        return {"seed": self.seed, "voices": self.voices, "versions": versions}
