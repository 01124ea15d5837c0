"""Tokens/s of the T2S path vs the audio path on the same texts, on CPU (tiny models, random T2S weights).

T2S path: whisperspeech2's ``TSARTransformer`` at WhisperSpeech's ``tiny`` size (depth 4, 6 heads x 64)
with random weights in the embedded tokenizer's token space, run by :class:`dataengine.t2s.model.T2SModel`
(batched, greedy) for exactly as many tokens as the audio path made for the same text (the speed does not
depend on the weight values; the output length is fixed so both paths make the same number of tokens).
Audio path: the project's default one, Piper ``joe-us`` (RTF ~0.09) + resampling + the embedded WhisperVQ
tokenizer (Whisper tiny.en encoder, a 30 s window per clip). Both single-threaded by default.

    PYTHONPATH=. python benchmarks/bench_t2s.py --texts 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def tiny_t2s(path: Path, stoks_len: int) -> Path:
    """WhisperSpeech's ``tiny`` T2S shape, random weights, the embedded tokenizer's codebook frozen in."""
    from whisperspeech2.t2s_up_wds_mlang_enclm import TSARTransformer, Tunables

    from dataengine.t2s.model import tokenizer_codebook

    codebook = tokenizer_codebook("default")
    torch.manual_seed(0)
    model = TSARTransformer(
        depth=4, n_head=6, head_width=64, ffn_mult=4, ttoks_len=550, stoks_len=stoks_len,
        stoks_codes=codebook.shape[0], stoks_width=codebook.shape[1], tunables=Tunables(),
    )  # fmt: skip
    with torch.no_grad():
        model.embeddings.embedding.set_frozen_embeddings(codebook)
        # a fixed output length: the final LayerNorm's output sums to its bias (width x 1), so an all -1 end
        # embedding gives the end token a logit of -width (times the output scale): it never wins
        model.decoder.ln_post.bias.fill_(1.0)
        model.embeddings.embedding.special.weight.fill_(-1.0)
    model.save_model(path)
    return path


def texts(n: int) -> list[str]:
    from dataengine.recipe import ChatterbotSource
    from dataengine.sources import iter_rows

    out = []
    for sample in iter_rows(ChatterbotSource(categories=["ai", "computers"])):
        if 20 <= len(sample.prompt) <= 120:
            out.append(sample.prompt)
        if len(out) == n:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from dataengine.audio.io import resample
    from dataengine.audio.pcm import quantize_pcm16
    from dataengine.recipe import VoiceConfig
    from dataengine.sample import AUDIO_SAMPLE_RATE
    from dataengine.t2s.model import T2SModel
    from dataengine.tokenizer.whispervq import load_whispervq
    from dataengine.tts.base import make_backend

    prompts = texts(args.texts)
    voice = make_backend(VoiceConfig(backend="piper", voice="joe-us"))
    voice.load()
    vq = load_whispervq("default")
    voice.synthesize("warm up")
    start = time.perf_counter()
    lengths, audio_s = [], 0.0
    for text in prompts:
        audio = quantize_pcm16(resample(voice.synthesize(text), voice.sample_rate, AUDIO_SAMPLE_RATE))
        audio_s += len(audio) / AUDIO_SAMPLE_RATE
        lengths.append(len(vq.encode([audio])[0]))
    audio_seconds = time.perf_counter() - start

    length = max(lengths)
    with tempfile.TemporaryDirectory() as tmp:
        model = T2SModel(tiny_t2s(Path(tmp) / "t2s.model", length + 1), batch_size=args.batch_size)
    model.generate(["warm up"], [0])
    start = time.perf_counter()
    made = model.generate(prompts, list(range(len(prompts))), temperature=0.0)
    t2s_seconds = time.perf_counter() - start
    t2s_tokens = sum(min(len(g.tokens), n) for g, n in zip(made, lengths, strict=True))
    assert all(len(g.tokens) == length for g in made), "a random T2S ended early: raise the end-token penalty"

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {len(prompts)} texts, "
        f"{audio_s:.1f} s of speech, {sum(lengths)} sound tokens (audio path); T2S batch "
        f"{args.batch_size}, {length} tokens per text (the longest audio-path count; tokens beyond a "
        "text's own count not counted)"
    )
    print(f"{'path':<44} {'seconds':>8} {'tokens/s':>9} {'texts/s':>8}")
    for name, seconds, tokens in (
        ("audio: piper joe-us + WhisperVQ tiny.en", audio_seconds, sum(lengths)),
        ("t2s: TSARTransformer tiny (random weights)", t2s_seconds, t2s_tokens),
    ):
        print(f"{name:<44} {seconds:8.2f} {tokens / seconds:9.1f} {len(prompts) / seconds:8.2f}")
    speedup = audio_seconds / t2s_seconds
    print(f"T2S speed-up on these texts: {speedup:.1f}x (lengths {np.min(lengths)}-{length})")


if __name__ == "__main__":
    main()
