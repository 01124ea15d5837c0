"""Samples/s per GPU of the T2S token path vs the audio path, random weights at the published sizes.

The speed of these models does not depend on their weight values, so no checkpoint is needed: each model
is built with the library's own class at WhisperSpeech's ``medium`` shape and random weights, and every
sample makes a fixed number of sound tokens (``--tokens``, 25/s; the end token is disabled).

- T2S path: ``TSARTransformer`` medium (depth 24, 16 heads x 64, 550 text bytes, codebook width 64 as in
  ``t2s-v1.9-medium-7lang``), run by :class:`dataengine.t2s.model.T2SModel` (KV caches, batched).
- audio path: the same T2S, then ``SADelARTransformer`` medium (depth 24, 16 heads x 64, 4 Encodec
  quantizers, 3 acoustic frames per semantic token) with the library's ``generate`` (``bs`` rows), then
  the project's WhisperVQ at Whisper medium size (``benchmarks/gpu_vq.py``'s ``random_vq``) on the
  waveform. The Vocos vocoder between S2A and Whisper is **not** timed (vocos needs pretrained Encodec
  weights to build): the audio path's figure is an upper bound of its speed, so the ratio printed is a
  lower bound of the T2S path's speed-up.

    python benchmarks/gpu_t2s.py                          # on a GPU: batches 1, 8, 32; about 3-5 minutes
    PYTHONPATH=. python benchmarks/gpu_t2s.py --device cpu --quick     # a smoke run with tiny shapes
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
SIZES = {"medium": (24, 16, 64), "tiny": (2, 2, 32)}
"""name -> (depth, heads, head width) of T2S and S2A."""


def random_t2s(path: Path, size: str, tokens: int, codebook_dim: int = 64) -> Path:
    from whisperspeech2.t2s_up_wds_mlang_enclm import TSARTransformer, Tunables

    depth, heads, width = SIZES[size]
    torch.manual_seed(0)
    model = TSARTransformer(
        depth=depth, n_head=heads, head_width=width, ttoks_len=550, stoks_len=tokens + 1, stoks_codes=513,
        stoks_width=codebook_dim, tunables=Tunables(),
    )  # fmt: skip
    with torch.no_grad():
        model.embeddings.embedding.main.weight.normal_(0, 1)
        # a fixed output length: the final LayerNorm's output sums to its bias (width x 1), so an all -1 end
        # embedding gives the end token a logit of -width (times the output scale): it never wins
        model.decoder.ln_post.bias.fill_(1.0)
        model.embeddings.embedding.special.weight.fill_(-1.0)
    model.save_model(path)
    return path


def random_s2a(size: str, tokens: int, device: torch.device, dtype: torch.dtype, batch: int):  # noqa: ANN201
    from whisperspeech2.s2a_delar_mup_wds_mlang import SADelARTransformer, Tunables

    depth, heads, width = SIZES[size]
    torch.manual_seed(1)
    model = SADelARTransformer(
        depth=depth, n_head=heads, head_width=width, ctx_n=3 * tokens + 8, stoks_len=tokens + 2,
        stoks_codes=514, spk_width=192, quantizers=4, tunables=Tunables(),
    ).to(device)  # fmt: skip
    model.eval()
    model.optimize(max_batch_size=batch, dtype=dtype, torch_compile=False)
    return model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--tokens", type=int, default=250, help="sound tokens per sample (250 = 10 s)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 25 tokens, batches 1,2")
    parser.add_argument("--budget-s", type=float, default=420.0)
    args = parser.parse_args()
    started = time.perf_counter()
    size, vq_size = ("tiny", "tiny") if args.quick else ("medium", "medium")
    tokens = 25 if args.quick else args.tokens
    batches = [1, 2] if args.quick else [int(b) for b in args.batches.split(",")]

    from gpu_vq import random_vq

    from dataengine.t2s.model import T2SModel
    from dataengine.tokenizer.whispervq import DTYPES

    device = torch.device(args.device)
    if device.type == "cpu":  # half precision is a GPU format
        torch.set_num_threads(2)
        args.dtype = "float32"
    dtype = DTYPES[args.dtype]
    vq = random_vq(vq_size).to_runtime(device, args.dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device: {name}; torch {torch.__version__}; {args.dtype}; {size} T2S/S2A, Whisper {vq_size} VQ; "
        f"{tokens} sound tokens ({tokens / 25:g} s) per sample; vocoder not timed"
    )
    header = ("batch", "t2s s", "s2a s", "vq s", "t2s samples/s", "audio samples/s", "ratio")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (5, 8, 8, 8, 14, 16, 6), strict=True)))
    text = "The quick brown fox jumps over the lazy dog, and then it runs back into the forest again."
    with tempfile.TemporaryDirectory() as tmp:
        t2s_path = random_t2s(Path(tmp) / "t2s.model", size, tokens)
        for batch in batches:
            if time.perf_counter() - started > args.budget_s:
                print(f"budget of {args.budget_s:g} s spent: stopping")
                break
            t2s = T2SModel(t2s_path, batch_size=batch, device=args.device, dtype=args.dtype)
            s2a = random_s2a(size, tokens, device, dtype, batch)
            speaker = torch.zeros(192)
            texts, seeds = [text] * batch, list(range(batch))
            t2s.generate(texts[:1], seeds[:1])  # warm-up (kernels, allocator)
            sync(device)
            start = time.perf_counter()
            made = t2s.generate(texts, seeds)
            sync(device)
            t2s_s = time.perf_counter() - start
            assert all(len(m.tokens) == tokens for m in made)
            stoks = torch.from_numpy(made[0].tokens)
            s2a.generate(stoks[:4], speaker.unsqueeze(0), bs=batch, show_progress_bar=False)  # warm-up
            sync(device)
            start = time.perf_counter()
            s2a.generate(stoks, speaker.unsqueeze(0), bs=batch, show_progress_bar=False)
            sync(device)
            s2a_s = time.perf_counter() - start
            rng = np.random.default_rng(0)
            audio = [rng.normal(0, 0.1, tokens * 640).astype(np.float32) for _ in range(batch)]
            vq.encode(audio[:1])
            sync(device)
            start = time.perf_counter()
            vq.encode(audio, batch_size=batch)
            sync(device)
            vq_s = time.perf_counter() - start
            audio_path = t2s_s + s2a_s + vq_s
            rates = f"{batch / t2s_s:14.2f} {batch / audio_path:16.2f} {audio_path / t2s_s:6.2f}"
            print(f"{batch:5d} {t2s_s:8.3f} {s2a_s:8.3f} {vq_s:8.3f} {rates}")
            del t2s, s2a
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
