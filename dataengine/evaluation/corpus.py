"""The labeled evaluation corpus: Piper speech from chatterbot prompts, clean variants that real
recordings resemble, and known degradations, each item labeled with the one reason it must get.

Labels: ``clean`` (must be kept), a reject reason from :data:`~dataengine.audio.filters.AUDIO_REJECT_REASONS`,
or ``borderline`` (noise at 10 dB SNR: reported, not scored). Deterministic for a given size and seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np

from dataengine.audio.io import resample
from dataengine.evaluation import signals as sig
from dataengine.evaluation.codecs import codec_roundtrip
from dataengine.sample import AUDIO_SAMPLE_RATE as SR

BORDERLINE = "borderline"

# (codec, bitrate in bit/s or None for fixed-rate codecs): every one must be flagged bad_compression.
CODEC_SETTINGS: tuple[tuple[str, int | None], ...] = (
    ("mp3", 8_000),
    ("mp3", 16_000),
    ("mp3", 24_000),
    ("mp3", 32_000),
    ("opus", 6_000),
    ("opus", 8_000),
    ("opus", 12_000),
    ("amr_nb", 4_750),
    ("amr_nb", 12_200),
    ("mulaw", None),
    ("gsm", None),
)
NOISE_KINDS: tuple[str, ...] = ("white", "pink", "brown", "hum", "babble")
PHONE_FLOOR_SNR_DB = 35.0
"""Speech-to-floor ratio of the telephone-band clips that get a wideband noise floor afterwards."""
SIZES: dict[str, int] = {"ci": 4, "bench": 24}
"""Named corpus sizes: number of distinct utterances (non-speech items scale with it)."""


@dataclass(frozen=True)
class CorpusItem:
    """One labeled clip: 16 kHz mono float32 audio, the text spoken in it (empty for non-speech)."""

    id: str
    label: str
    kind: str
    audio: np.ndarray
    text: str = ""


@cache
def _piper(length_scale: float):  # noqa: ANN202 - a TTSBackend
    from dataengine.recipe import VoiceConfig
    from dataengine.tts.base import make_backend

    backend = make_backend(VoiceConfig(length_scale=length_scale))
    backend.load()
    return backend


def corpus_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct chatterbot prompts of 25-110 characters, chosen by a seeded shuffle."""
    from dataengine.recipe import ChatterbotSource
    from dataengine.sources.chatterbot import iter_chatterbot

    prompts = sorted({s.prompt.strip() for s in iter_chatterbot(ChatterbotSource()) if s.kept})
    prompts = [p for p in prompts if 25 <= len(p) <= 110 and p.isascii()]
    order = np.random.default_rng(seed).permutation(len(prompts))
    return [prompts[i] for i in order[:n]]


def speak(text: str, length_scale: float = 1.0) -> tuple[np.ndarray, int]:
    """Piper speech at its native rate (22,050 Hz)."""
    backend = _piper(length_scale)
    return backend.synthesize(text), backend.sample_rate


def _clean_variants(x: np.ndarray, seed: int, voices: list[np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """Speech as real recordings have it: level, room tone, reverberation, mild noise (all kept)."""
    n = len(x)
    yield "as_is", x
    yield "quiet_-30dBFS", sig.set_level(x, -30.0)
    yield "band_7kHz", resample(resample(x, SR, 14_000), 14_000, SR)  # a 16 kHz source's gentler low-pass
    yield "room_tone_-50dB", sig.mix_at_snr(x, sig.coloured_noise(n, "pink", seed), 50.0)
    yield "noise_floor_30dB", sig.mix_at_snr(x, sig.coloured_noise(n, "brown", seed), 30.0)
    room = sig.reverberate(x, 0.5, seed)
    yield (
        "reverb_0.5s_room_tone",
        sig.set_level(sig.mix_at_snr(room, sig.coloured_noise(n, "pink", seed), 40.0), -26.0),
    )
    kind = NOISE_KINDS[seed % len(NOISE_KINDS)]
    yield f"{kind}_20dB", sig.mix_at_snr(x, _noise(kind, n, seed, voices), 20.0)


def _noise(kind: str, n: int, seed: int, voices: list[np.ndarray]) -> np.ndarray:
    if kind == "hum":
        return sig.hum(n, 50.0 if seed % 2 else 60.0, seed)
    if kind == "babble":
        return sig.babble(voices, n, seed)
    return sig.coloured_noise(n, kind, seed)


def build_corpus(utterances: int = SIZES["ci"], seed: int = 0) -> list[CorpusItem]:
    """The labeled corpus for ``utterances`` distinct prompts (about 40 items each)."""
    spoken = corpus_texts(utterances, seed)
    babble_texts = corpus_texts(6, seed + 1)  # the talkers behind babble: the same for every size
    scales = (1.0, 0.85, 1.2)
    voices = [resample(*speak(t, scales[i % 3]), SR) for i, t in enumerate(babble_texts)]
    items: list[CorpusItem] = []
    for u, text in enumerate(spoken):
        native, native_sr = speak(text, scales[u % 3])
        x = resample(native, native_sr, SR)
        n = len(x)
        uid = f"u{u:02d}"
        for name, audio in _clean_variants(x, seed * 1000 + u, voices):
            items.append(
                CorpusItem(f"{uid}-clean-{name}", "clean", f"clean/{name.split('_')[0]}", audio, text)
            )
        for codec, rate in CODEC_SETTINGS:
            audio = resample(codec_roundtrip(native, native_sr, codec, rate), native_sr, SR)
            tag = f"{codec}_{rate // 1000}k" if rate else codec
            items.append(CorpusItem(f"{uid}-codec-{tag}", "bad_compression", f"codec/{codec}", audio, text))
        for low_sr in (8_000, 11_025):
            audio = resample(resample(native, native_sr, low_sr), low_sr, SR)
            items.append(
                CorpusItem(f"{uid}-resampled-{low_sr}", "bad_compression", "band/resampled", audio, text)
            )
        # a telephone call recorded with a wideband noise floor added afterwards (no spectral cliff left)
        phone = resample(codec_roundtrip(native, native_sr, "mulaw"), native_sr, SR)
        colour = ("white", "pink")[u % 2]
        floor = sig.coloured_noise(len(phone), colour, seed * 1000 + u)
        audio = sig.mix_at_snr(phone, floor, PHONE_FLOOR_SNR_DB)
        kind = "band/phone_noise_floor"
        items.append(CorpusItem(f"{uid}-phone-{colour}_floor", "bad_compression", kind, audio, text))
        for k, kind in enumerate(NOISE_KINDS):
            noise = _noise(kind, n, seed * 1000 + u * 10 + k, voices)
            for snr in (10.0, 5.0, 0.0):
                label = BORDERLINE if snr == 10.0 else "noise"
                audio = sig.mix_at_snr(x, noise, snr)
                items.append(CorpusItem(f"{uid}-noise-{kind}-{snr:g}dB", label, f"noise/{kind}", audio, text))
        for gain in (4.0, 10.0):
            audio = np.clip(x * gain, -1.0, 1.0).astype(np.float32)
            items.append(CorpusItem(f"{uid}-clipped-x{gain:g}", "clipping", "clipping", audio, text))
        pad = sig.set_level(sig.coloured_noise(int(4.0 * SR), "pink", u), -70.0)
        lead = np.concatenate([pad, x]).astype(np.float32)
        trail = np.concatenate([x, pad]).astype(np.float32)
        items.append(CorpusItem(f"{uid}-silence-leading-4s", "silence", "silence/leading", lead, text))
        items.append(CorpusItem(f"{uid}-silence-trailing-4s", "silence", "silence/trailing", trail, text))
        items.extend(_non_speech(u, seed, voices))
    x0 = resample(*speak(spoken[0]), SR)
    items.append(CorpusItem("short-0.25s", "too_short", "duration", x0[: SR // 4].copy(), ""))
    long = np.concatenate([x0] * int(np.ceil(31 * SR / len(x0))))
    items.append(CorpusItem("long-31s", "too_long", "duration", long.astype(np.float32), ""))
    return items


def _non_speech(u: int, seed: int, voices: list[np.ndarray]) -> Iterator[CorpusItem]:
    """Clips without speech: noises, hum, tones, silence, room tone, music (durations 2-5 s)."""
    s = seed * 1000 + u
    n = int((2.0 + (u % 4)) * SR)
    level = -20.0 - 5 * (u % 3)
    clips = {
        "white": sig.coloured_noise(n, "white", s),
        "pink": sig.coloured_noise(n, "pink", s),
        "brown": sig.coloured_noise(n, "brown", s),
        "hum": sig.hum(n, 50.0 + 10 * (u % 2), s),
        "tone": sig.tone(n, (220.0 * 2 ** (u / 12),)),
        "chord": sig.tone(n, (261.6, 329.6, 392.0)),
        "silence": np.zeros(n, dtype=np.float32),
        "room_tone": sig.set_level(sig.coloured_noise(n, "brown", s), -60.0),
        "music_a": sig.music(n, s, 100.0 + 10 * u),
        "music_b": sig.music(n, s + 7, 140.0),
    }
    for name, audio in clips.items():
        if name not in ("silence", "room_tone"):
            audio = sig.set_level(audio, level)
        yield CorpusItem(f"u{u:02d}-nonspeech-{name}", "non_speech", f"non_speech/{name}", audio, "")
