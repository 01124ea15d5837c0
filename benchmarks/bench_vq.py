"""`make bench`: WhisperVQ tokenizer throughput on CPU (float32) at several batch sizes, one table.

The embedded default tokenizer (Whisper tiny.en encoder + the 512-code codebook) encodes the same clips
at each batch size; the tokens must be identical across batch sizes (checked here too). Every clip is
padded to Whisper's 30 s window, so the encoder's work per clip does not depend on its length: clips/s is
the figure that transfers, audio-s/s depends on the clip lengths (printed).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dataengine.tokenizer.whispervq import load_whispervq

SR = 16_000


def clips(n: int, seed: int = 0) -> list[np.ndarray]:
    """Deterministic speech-like test signals (harmonic chirps, syllable-rate envelope), 2-9 s long."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        seconds = 2.0 + 7.0 * (i % 8) / 7
        t = np.arange(int(seconds * SR)) / SR
        phase = 2 * np.pi * np.cumsum(120 + 40 * np.sin(2 * np.pi * 0.7 * t + i)) / SR
        voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
        env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + i) ** 2
        out.append((0.2 * voiced * env + 0.01 * rng.standard_normal(len(t))).astype(np.float32))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_whispervq(args.checkpoint)
    audio = clips(args.clips)
    audio_s = sum(len(a) for a in audio) / SR
    model.encode(audio[:1])  # warm-up (allocations, lazy init)
    threads = torch.get_num_threads()
    print(f"WhisperVQ on CPU float32: {model.source}; torch {torch.__version__}, {threads} threads")
    mean = audio_s / args.clips
    print(f"{args.clips} clips, {audio_s:.1f} s of audio (mean {mean:.1f} s), each padded to 30 s")
    print(f"{'batch':>5} {'seconds':>8} {'clips/s':>8} {'audio-s/s':>10} {'ms/clip':>8}  tokens")
    reference: list[np.ndarray] | None = None
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        start = time.perf_counter()
        tokens = model.encode(audio, batch_size=batch)
        seconds = time.perf_counter() - start
        if reference is None:
            reference = tokens
        same = all(np.array_equal(a, b) for a, b in zip(reference, tokens, strict=True))
        print(
            f"{batch:>5} {seconds:>8.2f} {args.clips / seconds:>8.2f} {audio_s / seconds:>10.1f} "
            f"{1000 * seconds / args.clips:>8.0f}  {'identical' if same else 'DIFFERENT'}"
        )
        if not same:
            raise SystemExit("tokens changed with the batch size")


if __name__ == "__main__":
    main()
