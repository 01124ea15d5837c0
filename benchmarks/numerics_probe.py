"""Which steps' bytes depend on the CPU's instruction set: each step's output digest under forced ISAs.

One CPU cannot stand in for another, but every library that has a knob can be forced onto a lower code
path on this one. For each knob this runs every step (TTS, resampling, metrics, VAD, codec detector, ASR,
Whisper encoder, WhisperVQ tokens, codebook fit, FLAC) in a fresh process and prints which digests moved
from the unforced run: a step that moves depends on the instruction set through that library.

    python benchmarks/numerics_probe.py             # the table (about 2 minutes on 2 cores)
    python benchmarks/numerics_probe.py --pinned    # the same forcing, with the project's pins in force:
                                                    # every digest must equal the pinned baseline
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

import dataengine  # noqa: F401 - first: the pins (unless native) must be set before numpy loads

PROMPTS = ["write a SQL query with HAVING", "What is the capital of France?", "I like to read books."]

KNOBS: list[tuple[str, dict[str, str]]] = [
    ("ATEN_CPU_CAPABILITY=default", {"ATEN_CPU_CAPABILITY": "default"}),
    ("ONEDNN_MAX_CPU_ISA=SSE41", {"ONEDNN_MAX_CPU_ISA": "SSE41"}),
    ("MKL_CBWR=COMPATIBLE", {"MKL_CBWR": "COMPATIBLE"}),
    ("CT2_FORCE_CPU_ISA=GENERIC", {"CT2_FORCE_CPU_ISA": "GENERIC"}),
    ("CT2_USE_MKL=1 (Intel's default)", {"CT2_USE_MKL": "1"}),
    ("CT2_USE_MKL=0 (AMD's default)", {"CT2_USE_MKL": "0"}),
    ("OPENBLAS_CORETYPE=Prescott", {"OPENBLAS_CORETYPE": "Prescott"}),
    ("NPY_DISABLE_CPU_FEATURES=X86_V3", {"NPY_DISABLE_CPU_FEATURES": "X86_V3"}),
    (
        "all of them lowest",
        {
            "CT2_FORCE_CPU_ISA": "GENERIC",
            "ATEN_CPU_CAPABILITY": "default",
            "ONEDNN_MAX_CPU_ISA": "SSE41",
            "MKL_CBWR": "COMPATIBLE",
            "OPENBLAS_CORETYPE": "Prescott",
            "NPY_DISABLE_CPU_FEATURES": "X86_V3",
        },
    ),
]
STEPS = [
    "piper",
    "espeak",
    "resample",
    "metrics",
    "vad",
    "codec",
    "flac",
    "asr",
    "encoder",
    "tokens",
    "codebook_fit",
    "codec_fit",
]


def _digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.tobytes() if hasattr(part, "tobytes") else repr(part).encode())
    return h.hexdigest()[:12]


def child() -> dict[str, str]:
    """Run every step once in this process; return step -> digest (plus the ASR text)."""
    import numpy as np
    import torch

    from dataengine.audio.asr import WhisperASR
    from dataengine.audio.codec_detector import codec_score, fit_logistic
    from dataengine.audio.filters import measure_audio
    from dataengine.audio.io import encode_flac, resample
    from dataengine.audio.pcm import quantize_pcm16
    from dataengine.audio.vad import SileroVAD
    from dataengine.recipe import AudioFilterConfig, VoiceConfig
    from dataengine.tokenizer.fit import kmeans
    from dataengine.tokenizer.whisper_encoder import log_mel_spectrogram, pad_or_trim_mel
    from dataengine.tokenizer.whispervq import load_whispervq
    from dataengine.tts.base import make_backend

    torch.set_num_threads(1)
    piper = make_backend(VoiceConfig(backend="piper"))
    espeak = make_backend(VoiceConfig(backend="espeak", voice="en-us"))
    raw = [piper.synthesize(p) for p in PROMPTS]
    clips = [quantize_pcm16(resample(a, piper.sample_rate, 16000)) for a in raw]
    out = {
        "piper": _digest(*raw),
        "espeak": _digest(*(espeak.synthesize(p) for p in PROMPTS)),
        "resample": _digest(*clips),
    }
    vad = SileroVAD()
    config = AudioFilterConfig()
    out["metrics"] = _digest(*(sorted(measure_audio(c, config, vad).items()) for c in clips))
    out["vad"] = _digest(*(vad.frame_probs(c) for c in clips))
    out["codec"] = _digest(*(codec_score(c) for c in clips))
    out["flac"] = _digest(*(encode_flac(c) for c in clips))
    asr = WhisperASR("tiny.en", cpu_threads=1)
    texts = [asr.transcribe(c) for c in clips]
    out["asr"] = _digest(texts)
    out["asr_text"] = texts[0]
    vq = load_whispervq("default")
    mels = torch.stack([pad_or_trim_mel(log_mel_spectrogram(c, vq.encoder.n_mels)) for c in clips])
    with torch.inference_mode():
        embs = vq.embed(mels)
    out["encoder"] = _digest(embs.numpy())
    out["tokens"] = _digest(*vq.encode(clips))
    # The fits get fixed inputs, so only their own arithmetic can move them.
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((3000, 384)).astype(np.float32)
    out["codebook_fit"] = _digest(kmeans(frames, 32, seed=0, iters=5))
    features = rng.standard_normal((400, 24))
    labels = (features[:, 0] + 0.5 * rng.standard_normal(400) > 0).astype(int)
    out["codec_fit"] = _digest(fit_logistic(features, labels, 1.0).to_json())
    return out


def run_child(env_extra: dict[str, str], pinned: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CT2_", "ATEN_", "ONEDNN_", "MKL_"))}
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("NPY_DISABLE_CPU_FEATURES", None)
    env.update(env_extra)
    env["DATAENGINE_NUMERICS"] = "pinned" if pinned else "native"
    proc = subprocess.run(
        [sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"child failed under {env_extra}: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pinned", action="store_true", help="keep the project's pins in force")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child()))
        return 0
    base = run_child({}, args.pinned)
    mode = "pinned" if args.pinned else "native (no pins)"
    print(f"numerics: {mode}; baseline ASR text: {base['asr_text']!r}")
    print("| forced | " + " | ".join(STEPS) + " |")
    print("|---|" + "---|" * len(STEPS))
    moved_any = False
    for label, extra in KNOBS:
        got = run_child(extra, args.pinned)
        cells = ["**moved**" if got[s] != base[s] else "same" for s in STEPS]
        moved_any |= any(got[s] != base[s] for s in STEPS)
        note = f" (heard {got['asr_text']!r})" if got["asr"] != base["asr"] else ""
        print(f"| {label}{note} | " + " | ".join(cells) + " |")
    return 1 if (args.pinned and moved_any) else 0


if __name__ == "__main__":
    sys.exit(main())
