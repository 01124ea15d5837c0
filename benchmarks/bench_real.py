"""Audio hours tokenized per CPU hour on real speech, and the projected cost of MLS English (~44,000 h).

Builds a ``recordings`` source over a folder of real recordings (default: Allison's Asterisk prompts,
Debian asterisk-core-sounds-en-g722) with the pretrain task, the audio filters and the embedded
WhisperVQ tokenizer, no ASR; measures the process CPU time of the whole build (decode, VAD trimming and
segmentation, filters, tokens, writing) against the audio hours kept. Then projects MLS English on the
GPU figure measured for the Ichigo-sized encoder (``benchmarks/results/gpu_vq-h200-2026-11-26.txt``:
Whisper-medium + bottleneck, fp16, batch 128, 2,321 audio-s/s on one H200) and on this CPU's figure.

    PYTHONPATH=. python benchmarks/bench_real.py --files 40
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from dataengine.pipeline import build
from dataengine.recipe import Recipe

MLS_ENGLISH_H = 44_000.0
H200_MEDIUM_FP16_AUDIO_S_PER_S = 2_321.0
"""WhisperVQ (Whisper-medium encoder + Ichigo bottleneck) on one H200, fp16, batch 128 (measured)."""
ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", type=Path, default=ALLISON, help="a folder of recordings")
    parser.add_argument("--files", type=int, default=40, help="recordings to build (the build's limit)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    recipe = Recipe.model_validate(
        {
            "name": "bench-real",
            "limit": args.files,
            "source": {"kind": "recordings", "path": str(args.path)},
            "tasks": {"pretrain": {"share": 1.0}},
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        cpu, wall = time.process_time(), time.perf_counter()
        summary = build(recipe, Path(tmp) / "out", workers=args.workers, progress=False)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    hours = summary.audio_seconds / 3600
    per_cpu_hour = hours / (cpu / 3600) if cpu else float("nan")
    print(f"built {summary.kept} kept / {sum(summary.rejected.values())} rejected from {args.path}")
    print(
        f"audio kept: {summary.audio_seconds:.1f} s; CPU time (this process) {cpu:.1f} s; wall {wall:.1f} s"
    )
    if args.workers > 1:
        print("note: with --workers > 1 the worker processes' CPU time is not counted; use --workers 1")
    print(f"=> {per_cpu_hour:.2f} audio hours tokenized per CPU hour (tiny.en encoder, 1 process)")
    print(f"MLS English ({MLS_ENGLISH_H:,.0f} h) at this rate: {MLS_ENGLISH_H / per_cpu_hour:,.0f} CPU hours")
    gpu_h = MLS_ENGLISH_H * 3600 / H200_MEDIUM_FP16_AUDIO_S_PER_S / 3600
    print(
        f"MLS English on the Ichigo-sized encoder (medium fp16, H200, {H200_MEDIUM_FP16_AUDIO_S_PER_S:,.0f}"
        f" audio-s/s): {gpu_h:,.1f} GPU hours of encoder time (decode, VAD and filters run on CPUs beside it)"
    )


if __name__ == "__main__":
    main()
