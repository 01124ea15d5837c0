"""`make bench`: what the Whisper encoder's exact shortcuts save on CPU, one table.

The embedded tokenizer's tiny.en encoder runs each clip (padded to the 30 s window) three ways, one
thread, interleaved for ``--rounds`` rounds: in full; with layer 0's padding template and the short
stem (``n_frames`` given: what every build does); and with those plus the last layer for the tokens'
frames only (``rows``: a build whose tokens no decoder reads). Outputs are checked bit for bit against
the full encoder (the shortened one on the frames it returns); a shortcut that does not hold on this
machine is reported as such and then costs what the full encoder does.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from dataengine.tokenizer.whisper_encoder import log_mel_spectrogram, pad_or_trim_mel
from dataengine.tokenizer.whispervq import load_whispervq

SR = 16_000


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """A harmonic chirp with a syllable-rate envelope and a little noise (float32, 16 kHz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(120 + 40 * np.sin(2 * np.pi * 0.7 * t + seed)) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed) ** 2
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", default="1.2,3,9", help="clip lengths, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    vq = load_whispervq("default")
    encoder = vq.encoder
    print(f"Whisper encoder shortcuts, 1 thread, median of {args.rounds} interleaved rounds (ms per clip)")
    print("| clip | full | + padding template, short stem | + last layer for the tokens' frames | outputs |")
    print("|---|---|---|---|---|")
    with torch.inference_mode():
        for i, seconds in enumerate(float(s) for s in args.seconds.split(",")):
            mel = log_mel_spectrogram(speechlike(seconds, seed=i))
            n_frames = [mel.shape[-1]]
            window = pad_or_trim_mel(mel)[None]
            rows = vq.token_frames(n_frames[0])
            ways = {"full": (window,), "template": (window, n_frames), "rows": (window, n_frames, rows)}
            outputs = {name: encoder(*call) for name, call in ways.items()}  # also warms up the shortcuts
            times: dict[str, list[float]] = {name: [] for name in ways}
            for r in range(args.rounds):
                for name in list(ways) if r % 2 == 0 else list(ways)[::-1]:
                    started = time.process_time()
                    encoder(*ways[name])
                    times[name].append(1000 * (time.process_time() - started))
            full = outputs["full"]
            short = outputs["rows"]
            same = torch.equal(outputs["template"], full) and torch.equal(short, full[:, : short.shape[1]])
            applies = (
                f"template {'on' if encoder.padding.value(encoder.stem(window)) is not None else 'off'}, "
                f"{short.shape[1]} of 1500 frames"
            )
            ms = {name: statistics.median(values) for name, values in times.items()}
            cells = [f"{ms[name]:.0f} ({ms[name] / ms['full']:.3f})" for name in ("template", "rows")]
            verdict = "bit-identical" if same else "DIFFERENT"
            print(f"| {seconds:g} s | {ms['full']:.0f} | {cells[0]} | {cells[1]} | {verdict}; {applies} |")
            if not same:
                raise SystemExit("a shortcut changed the encoder's output")


if __name__ == "__main__":
    main()
