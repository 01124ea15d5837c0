"""ASR round trip per voice: each voice of a recipe's pool speaks the same prompts, `audio-check` judges.

Every voice (a ``draw:N`` entry: its first ``--draws`` speakers) speaks the first ``--prompts`` prompts
that pass the recipe's text filters; the clips and their transcripts (``FILE.txt``) go to one folder and
``dataengine audio-check --json --recipe RECIPE`` checks them all, as a user would. Prints, per voice:
mean and worst WER, mean CER, clips kept, and the voice's real-time factor alone (this machine, this run).

    python benchmarks/voice_wer.py --recipe recipes/demo.yaml --prompts 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import soundfile as sf

from dataengine.recipe import load_recipe
from dataengine.sources import iter_source
from dataengine.text.filters import check_text
from dataengine.tts.base import make_backend
from dataengine.tts.kokoro_voices import DRAW_PREFIX
from dataengine.tts.pool import expand_voices

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "demo.yaml")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--draws", type=int, default=2, help="speakers of each draw:N entry")
    parser.add_argument("--out", type=Path, help="keep the clips here (default: a temporary folder)")
    args = parser.parse_args()

    recipe = load_recipe(args.recipe)
    prompts = [
        s.prompt
        for s in iter_source(recipe.with_overrides(limit=args.prompts * 4))
        if s.kept and check_text(s.prompt, recipe.text_filters, recipe.tokenizer.max_sound_tokens) is None
    ][: args.prompts]
    voices = []
    for entry in recipe.tts.voices:
        expanded = expand_voices([entry], recipe.seed)
        voices += expanded[: args.draws] if entry.voice.startswith(DRAW_PREFIX) else expanded
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        names, rtf = {}, {}
        for v, voice in enumerate(voices):
            backend = make_backend(voice)
            backend.load()
            spoken = seconds = 0.0
            for p, prompt in enumerate(prompts):
                started = time.perf_counter()
                audio = backend.synthesize(prompt)
                seconds += time.perf_counter() - started
                spoken += len(audio) / backend.sample_rate
                clip = folder / f"v{v:03d}-p{p:02d}.wav"
                sf.write(clip, audio, backend.sample_rate, subtype="PCM_16")
                clip.with_suffix(".txt").write_text(prompt, encoding="utf-8")
                names[clip.name] = voice.name
            rtf[voice.name] = seconds / max(spoken, 1e-9)
        clips = sorted(str(p) for p in folder.glob("v*.wav"))
        cmd = [sys.executable, "-m", "dataengine.cli", "audio-check", "--json", "--recipe", str(args.recipe)]
        proc = subprocess.run([*cmd, *clips], capture_output=True, text=True, check=False)
    rows: dict[str, list[dict]] = defaultdict(list)
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            rows[names[Path(row["path"]).name]].append(row)
    print(f"{len(prompts)} prompts of {args.recipe.name}; audio-check --recipe {args.recipe.name}")
    print(f"| {'voice':<58} | mean WER | worst WER | mean CER | kept | RTF alone |")
    print(f"|{'-' * 60}|----------|-----------|----------|------|-----------|")
    for voice in voices:
        got = rows.get(voice.name, [])
        wers = [r["metrics"].get("asr_wer", float("nan")) for r in got]
        cers = [r["metrics"].get("asr_cer", float("nan")) for r in got]
        kept = sum(r["verdict"] == "keep" for r in got)
        mean_wer = sum(wers) / max(len(wers), 1)
        mean_cer = sum(cers) / max(len(cers), 1)
        print(
            f"| {voice.name:<58} | {mean_wer:8.3f} | {max(wers, default=float('nan')):9.3f} | "
            f"{mean_cer:8.3f} | {kept:>2}/{len(got):<2}| {rtf[voice.name]:9.3f} |"
        )
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
