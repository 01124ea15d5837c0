"""WhisperVQ batched-encoding benchmark for one GPU (also runs on CPU with ``--device cpu --quick``).

Random weights, no downloads: a Whisper tiny-sized and a Whisper medium-sized encoder (openai-whisper's
shapes: 384 x 4 layers / 1024 x 24 layers) with an Ichigo-shaped bottleneck (cosine codebook, 512 codes +
mask, codebook_dim 64, residual MLP, mean-pool x2). For each model, dtype (float32, float16, bfloat16 via
autocast) and batch size (1-128) it times ``WhisperVQ.encode`` end to end (log-mel on the device, encoder,
quantizer) and prints clips/s, audio-s/s, peak memory and the share of tokens equal to float32's.
Runs in well under 5 minutes on an H100; ``--budget-s`` stops early (printing what it measured).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dataengine.tokenizer.whisper_encoder import WhisperEncoder
from dataengine.tokenizer.whispervq import WhisperVQ

SR = 16_000
SIZES = {"tiny": (384, 6, 4), "medium": (1024, 16, 24)}
"""name -> (width, heads, layers) of the Whisper encoder."""


def random_vq(size: str, seed: int = 0) -> WhisperVQ:
    """A WhisperVQ with random weights shaped like the real ones (Whisper ``size`` + Ichigo bottleneck)."""
    width, heads, layers = SIZES[size]
    torch.manual_seed(seed)
    encoder = WhisperEncoder(n_mels=80, n_ctx=1500, n_state=width, n_head=heads, n_layer=layers)
    torch.nn.init.normal_(encoder.positional_embedding, std=0.1)
    g = torch.Generator().manual_seed(seed + 1)
    cdim = 64
    state = {
        "mlp_ln.weight": torch.ones(width),
        "mlp_ln.bias": torch.zeros(width),
        "mlp.0.weight": torch.randn(4 * width, width, generator=g) / width**0.5,
        "mlp.0.bias": torch.zeros(4 * width),
        "mlp.2.weight": torch.randn(width, 4 * width, generator=g) / (4 * width) ** 0.5,
        "mlp.2.bias": torch.zeros(width),
        "rq.layers.0.project_in.weight": torch.randn(cdim, width, generator=g) / width**0.5,
        "rq.layers.0.project_in.bias": torch.zeros(cdim),
        "rq.layers.0._codebook.embed": torch.nn.functional.normalize(
            torch.randn(1, 513, cdim, generator=g), dim=-1
        ),
    }
    config = dict(
        vq_codes=512, q_depth=1, n_head=heads, head_width=width // heads, downsample=2, use_cosine_sim=True
    )
    tunables = dict(mask_embs=True, downsample_mean=True)
    return WhisperVQ(encoder, config, tunables, state, source=f"random {size}")


def clips(n: int, seconds: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = []
    for i in range(n):
        tone = np.sin(2 * np.pi * (150 + 10 * i) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
        out.append((0.2 * tone + 0.02 * rng.standard_normal(len(t))).astype(np.float32))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_encode(model: WhisperVQ, audio: list[np.ndarray], batch: int, repeats: int) -> tuple[float, list]:
    """Best-of-``repeats`` seconds for encoding ``audio`` in batches of ``batch`` (after one warm-up)."""
    tokens = model.encode(audio, batch_size=batch)
    sync(model.device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = model.encode(audio, batch_size=batch)
        sync(model.device)
        best = min(best, time.perf_counter() - start)
    return best, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", default="tiny,medium")
    parser.add_argument("--dtypes", default="float32,float16,bfloat16")
    parser.add_argument("--batch-sizes", default="1,8,32,64,128")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=270.0, help="stop starting new rows after this")
    parser.add_argument(
        "--quick", action="store_true", help="small CPU-sized run: tiny, batches 1,2, 2 clips"
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.batch_sizes, args.repeats = "tiny", "1,2", 1
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu --quick")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    tf32 = torch.backends.cuda.matmul.allow_tf32
    print(f"device: {name}; torch {torch.__version__}; TF32 matmul {tf32}; clips of {args.seconds:g} s")
    print(f"{'model':<7}{'dtype':<10}{'batch':>6}{'clips':>6}{'seconds':>9}{'clips/s':>9}{'audio-s/s':>11}"
          f"{'peak MiB':>10}{'= fp32':>8}")  # fmt: skip
    started = time.perf_counter()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    for size in args.sizes.split(","):
        base = random_vq(size)
        reference: dict[int, list] = {}
        for dtype in args.dtypes.split(","):
            model = base.to_runtime(device, dtype)
            for batch in batches:
                if time.perf_counter() - started > args.budget_s:
                    print(f"stopped: the {args.budget_s:g} s budget is spent")
                    return
                n = max(2, batch) if args.quick else max(batch, 8)
                audio = clips(n, args.seconds)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                seconds, tokens = time_encode(model, audio, batch, args.repeats)
                peak = (
                    torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
                )
                if dtype == "float32":
                    reference[batch] = tokens
                ref = reference.get(batch)
                agree = (
                    float(np.mean(np.concatenate(tokens) == np.concatenate(ref[: len(tokens)])))
                    if ref is not None and len(ref) == len(tokens)
                    else float("nan")
                )
                print(f"{size:<7}{dtype:<10}{batch:>6}{n:>6}{seconds:>9.3f}{n / seconds:>9.1f}"
                      f"{n * args.seconds / seconds:>11.0f}{peak:>10.0f}{agree:>8.3f}")  # fmt: skip
        del base, model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
