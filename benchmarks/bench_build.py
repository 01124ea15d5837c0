"""`make bench`: throughput of each stage and of the whole build on the demo recipe, one table.

Every ratio is measured inside this one run (the machine is shared and noisy): the TTS real-time
factor inside the engine is compared with the same voices called directly on the same prompts just
before (each prompt in the voice the build draws for it), in total and per backend (Piper, Kokoro...).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from dataengine.pipeline import build
from dataengine.recipe import load_recipe
from dataengine.sources import iter_source
from dataengine.text.filters import check_text
from dataengine.tts.base import make_backend
from dataengine.tts.stage import TTSStage, choose_voice

ROOT = Path(__file__).resolve().parents[1]


def voices_alone(recipe, limit: int) -> dict[str, tuple[float, float]]:  # noqa: ANN001
    """Per backend: (seconds, audio-seconds) for the prompts the build speaks, each in its drawn voice."""
    pool = TTSStage(recipe.tts, recipe.seed).voices
    backends = {}
    totals: dict[str, list[float]] = {}
    for s in iter_source(recipe.with_overrides(limit=limit)):
        if not s.kept or check_text(s.prompt, recipe.text_filters, recipe.tokenizer.max_sound_tokens):
            continue
        voice = choose_voice(pool, recipe.seed, s.id)
        if voice.name not in backends:
            backends[voice.name] = make_backend(voice)
            backends[voice.name].load()
        backend = backends[voice.name]
        started = time.perf_counter()
        audio_s = len(backend.synthesize(s.prompt)) / backend.sample_rate
        seconds, audio = totals.get(voice.backend, [0.0, 0.0])
        totals[voice.backend] = [seconds + time.perf_counter() - started, audio + audio_s]
    return {name: (t[0], t[1]) for name, t in sorted(totals.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "demo.yaml")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    recipe = load_recipe(args.recipe).with_overrides(limit=args.limit)
    alone = voices_alone(recipe, args.limit)
    alone_s, alone_audio = sum(t[0] for t in alone.values()), sum(t[1] for t in alone.values())
    with tempfile.TemporaryDirectory() as tmp:
        summary = build(recipe, Path(tmp) / "out", workers=args.workers, progress=False)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    rows = []
    for stage in summary.stages:
        rate = stage.seen / stage.seconds if stage.seconds else float("inf")
        audio_rate = stage.audio_seconds / stage.seconds if stage.seconds else float("inf")
        rows.append((stage.name, stage.seen, stage.seconds, rate, audio_rate))
    processed = summary.kept + sum(summary.rejected.values())
    rows.append(
        (
            "whole build",
            processed,
            summary.wall_seconds,
            processed / summary.wall_seconds,
            summary.audio_seconds / summary.wall_seconds,
        )
    )
    print(
        f"demo recipe, limit {args.limit}, workers {args.workers}; kept {summary.kept}, "
        f"{summary.audio_seconds:.0f} s of kept audio"
    )
    print(f"| {'stage':<14} | {'samples':>7} | {'seconds':>8} | {'samples/s':>9} | {'audio-s/s':>9} |")
    print(f"|{'-' * 16}|{'-' * 9}|{'-' * 10}|{'-' * 11}|{'-' * 11}|")
    for name, n, secs, rate, audio_rate in rows:
        print(f"| {name:<14} | {n:>7} | {secs:>8.2f} | {rate:>9.2f} | {audio_rate:>9.2f} |")
    tts = next(s for s in summary.stages if s.name == "tts")
    engine_rtf = tts.seconds / max(tts.audio_seconds, 1e-9)
    alone_rtf = alone_s / max(alone_audio, 1e-9)
    print()
    print(
        f"TTS real-time factor: in engine {engine_rtf:.3f}, the same voices alone {alone_rtf:.3f} "
        f"(ratio {engine_rtf / alone_rtf:.2f}; the engine also resamples to 16 kHz)"
    )
    for name, (seconds, audio) in alone.items():
        print(f"  {name:<8} alone: RTF {seconds / max(audio, 1e-9):.3f} over {audio:.0f} s of audio")
    print(f"peak RSS: this process {peak_mib:.0f} MiB, largest worker {peak_children_mib:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
