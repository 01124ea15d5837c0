"""Fit the shipped codec detector (:mod:`dataengine.audio.codec_detector`) and score it on held-out talkers.

Training: Piper speech of chatterbot prompts that the evaluation corpus does not use, and Allison
prompts that the real-recording subset does not use; each clean (the four real-recording variants:
as recorded, 35 dB quieter, a 44.1 kHz round trip, a room-tone floor) and through Opus at 9, 10, 11 and
12 kbps (libopus SILK wideband, which keeps the whole band, so no band-edge rule sees it). Held out,
whole sources: the ALSA announcements, Codec2's 16 kHz clips and CMU ARCTIC a0007.

    python -m dataengine.evaluation.codec_fit            # refit, print the held-out scores, write the asset
    python -m dataengine.evaluation.codec_fit --check    # refit and fail unless it matches the shipped asset

Deterministic: fixed prompts, fixed seeds for the noise floors, a Newton fit with no random start. The
refit is byte-identical only where its inputs are: Piper (ONNX Runtime) and libopus (FFmpeg) pick their
kernels by CPU, and Opus's quantiser turns a last-bit difference into a slightly different clip. Measured:
the asset fitted on the first author's CPU and a refit on an AMD EPYC (AVX2) differ by 0.0057 at most in a
weight (of 1.96); ``--check`` therefore accepts a refit within :data:`WEIGHT_TOLERANCE` whose verdicts on
every example equal the shipped ones, and says which of the two it found.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataengine.audio.codec_detector import CodecDetector, default_asset, fit_logistic, residual_features
from dataengine.audio.io import resample
from dataengine.evaluation import real
from dataengine.evaluation.codecs import codec_roundtrip
from dataengine.recipe import VoiceConfig
from dataengine.sample import AUDIO_SAMPLE_RATE as SR
from dataengine.tts.base import make_backend

OPUS_RATES = (9_000, 10_000, 11_000, 12_000)
"""Positives: the Opus bitrates libopus codes as SILK wideband."""
REPORT_RATES = (16_000, 24_000)
"""Opus rates scored for information only (not a reject target)."""
PIPER_PROMPTS = 30
ESPEAK_PROMPTS = 20
ESPEAK_VOICES = (("en-us", 1.0), ("en-gb+f3", 1.1), ("en-us+m3", 0.9), ("en-gb", 1.0))
"""A formant synthesizer's pulse-train excitation is the clean speech that looks most like a codec's."""
ALLISON_PROMPTS = 60
L2 = 1.0
HELD_OUT = ("alsa", "codec2", "arctic")
WEIGHT_TOLERANCE = 0.05
"""Largest accepted difference of any standardisation or model parameter between a refit and the asset."""
SCORE_TOLERANCE = 0.5
"""Largest accepted difference (log-odds) of any example's score; the nearest threshold margin of a
held-out example is 1.6 (clean <= -6.1 and Opus 9-12 kbps >= +2.6 against -1 and +2)."""


@dataclass(frozen=True)
class Example:
    source: str
    name: str
    variant: str
    label: int  # 1: Opus <= 12 kbps, 0: clean, -1: reported only
    features: np.ndarray


def _speech_sources() -> Iterator[tuple[str, str, np.ndarray]]:
    """(source, name, 16 kHz audio) of every talker, training and held out."""
    from dataengine.evaluation.corpus import SIZES, corpus_texts, speak

    used = {name.removeprefix("allison-") for name, _ in real.wideband_speech(real.REAL_SIZES["bench"])}
    prompts = sorted(
        p
        for p in real.ALLISON.glob("*.g722")
        if real.PROMPT_BYTES[0] <= p.stat().st_size <= real.PROMPT_BYTES[1] and p.stem not in used
    )
    picks = np.linspace(0, len(prompts) - 1, min(ALLISON_PROMPTS, len(prompts))).round().astype(int)
    for i in sorted(set(picks.tolist())):
        yield "allison", prompts[i].stem, real.load_16k(prompts[i])
    for path in sorted(real.FREEDESKTOP.glob("audio-channel-*.oga")):
        yield "alsa", path.stem, real.load_16k(path)
    yield "codec2", "speech_orig_16k", real.load_16k(real.CODEC2 / "raw" / "speech_orig_16k.wav")
    yield "codec2", "wia_16kHz", real.load_16k(real.CODEC2 / "wav" / "wia_16kHz.wav")
    yield "arctic", "a0007", real.load_16k(real.ARCTIC)
    bench = SIZES["bench"]
    texts = corpus_texts(bench + PIPER_PROMPTS, 0)[bench:]  # prompts the evaluation corpus never speaks
    for u, text in enumerate(texts):
        native, native_sr = speak(text, (1.0, 0.85, 1.2)[u % 3])
        yield "piper", f"p{u:02d}", resample(native, native_sr, SR)
    for u, text in enumerate(texts[:ESPEAK_PROMPTS]):
        voice, speed = ESPEAK_VOICES[u % len(ESPEAK_VOICES)]
        backend = make_backend(VoiceConfig(backend="espeak", voice=voice, length_scale=speed))
        yield "espeak", f"e{u:02d}", resample(backend.synthesize(text), backend.sample_rate, SR)


def build_examples() -> list[Example]:
    """Features of every clean variant and Opus round trip of every talker."""
    missing = real.missing_real_audio()
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: {real.REAL_HINT}")
    out: list[Example] = []
    for k, (source, name, x) in enumerate(_speech_sources()):
        clips = [(v, 0, a) for v, a in real.clean_variants(x, k)]
        clips += [(f"opus_{r // 1000}k", 1, codec_roundtrip(x, SR, "opus", r)) for r in OPUS_RATES]
        clips += [(f"opus_{r // 1000}k", -1, codec_roundtrip(x, SR, "opus", r)) for r in REPORT_RATES]
        for variant, label, audio in clips:
            feats = residual_features(audio)
            if feats is None:
                raise RuntimeError(f"{source}/{name}/{variant} has no active frame")
            out.append(Example(source, name, variant, label, feats))
    return out


def fit(examples: list[Example], held_out: tuple[str, ...] = HELD_OUT) -> CodecDetector:
    train = [e for e in examples if e.source not in held_out and e.label >= 0]
    return fit_logistic(np.stack([e.features for e in train]), np.array([e.label for e in train]), L2)


def report(detector: CodecDetector, examples: list[Example], threshold: float) -> dict[str, dict[str, float]]:
    """Per (train|held_out, variant): share flagged at ``threshold``, min and max score."""
    rows: dict[str, dict[str, float]] = {}
    scores = detector.score_features(np.stack([e.features for e in examples]))
    for split in ("train", "held_out"):
        for variant in sorted({e.variant for e in examples}):
            sel = [
                s
                for e, s in zip(examples, scores, strict=True)
                if e.variant == variant and (e.source in HELD_OUT) == (split == "held_out")
            ]
            if sel:
                arr = np.array(sel)
                rows[f"{split}/{variant}"] = {
                    "n": len(arr),
                    "flagged": round(float(np.mean(arr > threshold)), 4),
                    "min": round(float(arr.min()), 3),
                    "max": round(float(arr.max()), 3),
                }
    return rows


def main(argv: list[str] | None = None) -> int:
    from dataengine.recipe import AudioFilterConfig

    parser = argparse.ArgumentParser(prog="python -m dataengine.evaluation.codec_fit", description=__doc__)
    parser.add_argument("--out", type=Path, default=default_asset(), help="where to write the weights")
    parser.add_argument("--check", action="store_true", help="fail unless the refit equals the --out file")
    args = parser.parse_args(argv)
    examples = build_examples()
    detector = fit(examples)
    threshold = AudioFilterConfig().max_codec_score
    rows = report(detector, examples, threshold)
    for key, row in rows.items():
        span = f"{row['min']:+.2f} .. {row['max']:+.2f}"
        print(f"{key:28s} n={row['n']:4d} flagged={row['flagged']:.3f} score {span}")
    text = asset_text(detector, examples)
    if args.check:
        return check_against(args.out, text, detector, examples)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def asset_text(detector: CodecDetector, examples: list[Example]) -> str:
    """The asset file's text: the weights plus what they were trained on."""
    sources = sorted({e.source for e in examples if e.source not in HELD_OUT})
    return detector.to_json({"trained_on": sources, "held_out": list(HELD_OUT), "l2": L2})


def check_against(path: Path, text: str, refit: CodecDetector, examples: list[Example]) -> int:
    """0 when the refit equals ``path`` byte for byte, or matches it within the stated tolerances."""
    if not path.is_file():
        print(f"{path}: no such file to check against")
        return 1
    shipped_text = path.read_text(encoding="utf-8")
    if shipped_text == text:
        print("refit equals the shipped weights byte for byte")
        return 0
    shipped = CodecDetector.from_json(shipped_text)
    params = [(shipped.mean, refit.mean), (shipped.scale, refit.scale), (shipped.weights, refit.weights)]
    weight_diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in params)
    weight_diff = max(weight_diff, abs(shipped.bias - refit.bias))
    features = np.stack([e.features for e in examples])
    a, b = shipped.score_features(features), refit.score_features(features)
    score_diff = float(np.max(np.abs(a - b)))
    from dataengine.recipe import AudioFilterConfig

    threshold = AudioFilterConfig().max_codec_score
    flips = int(np.sum((a > threshold) != (b > threshold)))
    ok = weight_diff <= WEIGHT_TOLERANCE and score_diff <= SCORE_TOLERANCE and flips == 0
    print(
        f"refit differs from {path} in the last digits (other CPU kernels upstream): max parameter "
        f"difference {weight_diff:.4f} (tolerance {WEIGHT_TOLERANCE}), max score difference {score_diff:.3f} "
        f"(tolerance {SCORE_TOLERANCE}), {flips} verdicts changed of {len(examples)}: "
        + ("within tolerance" if ok else "OUT OF TOLERANCE")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
