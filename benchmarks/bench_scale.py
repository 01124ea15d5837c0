"""`make bench`: engine overhead, parallel speed-up, incremental rebuild and Ray vs local, one table;
with ``--engine``, the ordered part at 10 k, 100 k and 1 M samples (peak RSS, time per sample).

Every ratio is measured in this one run on the same machine. Cold builds use a fresh, empty stage cache.

``--engine`` measures the engine, not the models: each sample's spoken turn gets audio, tokens, metrics
and FLAC bytes precomputed once (synthetic clips, random codes) and reused, in place of the stages; what
is timed is what one process does for every sample of a real build: the source (a JSONL file, ids checked
for repeats), the task mix, formatting, the shard and manifest writers (closing included: the manifest's
merge of its sorted runs). Each size runs in a fresh process; finished shards are deleted as they close
(1 M samples of audio would fill the disk; their bytes were written).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dataengine.cache import StageCache
from dataengine.executors import LocalExecutor, RayExecutor
from dataengine.pipeline import BuildSummary, build
from dataengine.recipe import Recipe, load_recipe

ROOT = Path(__file__).resolve().parents[1]
MODEL_STAGES = ("tts", "asr", "tokenizer")  # the stages that run a model (VAD is a filter)


def model_seconds(summary: BuildSummary) -> float:
    return sum(s.seconds for s in summary.stages if s.name in MODEL_STAGES)


CLIPS = 16
"""Distinct precomputed clips (0.6-1.6 s), reused round-robin."""
REJECT_EVERY = 20
"""Every 20th sample comes back rejected by a filter (its failing turn's audio goes to rejected/)."""


def engine_recipe(rows: Path, n: int) -> Recipe:
    return Recipe.model_validate(
        {
            "name": "engine-scale",
            "seed": 0,
            "limit": n,
            "source": {"kind": "files", "paths": [str(rows)], "prompt_column": "p", "response_column": "r"},
            "tasks": {
                "instruction": {"share": 0.6},
                "transcription": {"share": 0.3},
                "noise_refusal": {"share": 0.1, "kinds": {"white": 1, "tokens": 1}},
            },
            "shards": {"max_samples": 5000},
        }
    )


def _clips(metric_names: list[str]) -> list[tuple[np.ndarray, np.ndarray, dict[str, float], bytes]]:
    from dataengine.audio.io import encode_flac

    rng = np.random.default_rng(0)
    clips = []
    for k in range(CLIPS):
        n = int(16000 * (0.6 + k / CLIPS))
        t = np.arange(n) / 16000
        audio = (0.3 * np.sin(2 * np.pi * (150 + 10 * k) * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
        audio += (0.01 * rng.standard_normal(n)).astype(np.float32)
        tokens = rng.integers(0, 512, size=n * 25 // 16000).astype(np.int16)
        metrics = {name: round(float(rng.uniform(0, 30)), 4) for name in metric_names}
        clips.append((audio, tokens, metrics, encode_flac(audio)))
    return clips


def engine_child(n: int, work: Path) -> dict[str, float]:
    """One size, in this (fresh) process: the ordered part of a build of ``n`` samples."""
    from dataengine.pipeline import BuildSummary, _batches, _OrderedWriter, plan_build, prepare_output
    from dataengine.registry import build_stages, metric_names
    from dataengine.sample import TOKENS
    from dataengine.writers import shards

    rows = work / "rows.jsonl"
    with rows.open("w", encoding="utf-8") as handle:
        for i in range(n):
            row = {"p": f"what is the capital of country {i}?", "r": f"country {i}'s capital."}
            handle.write(json.dumps(row))
            handle.write("\n")
    recipe = engine_recipe(rows, n)
    clips = _clips(metric_names())
    close_shard = shards.ShardWriter._close

    def close_and_delete(self: shards.ShardWriter) -> None:
        close_shard(self)
        if self.shards:
            (self.folder / self.shards[-1]).unlink(missing_ok=True)

    shards.ShardWriter._close = close_and_delete
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started, cpu_started = time.perf_counter(), time.process_time()
    fill = fill_cpu = 0.0
    plan = plan_build(recipe)
    staging = prepare_output(work / "out")
    stage_names = [stage.name for stage in build_stages(recipe)]  # the manifest's columns (no model loads)
    writer = _OrderedWriter(recipe, staging, BuildSummary(out=work / "out"), stage_names)
    for count, batch in enumerate(_batches(plan.feed(), 16)):
        t, c = time.perf_counter(), time.process_time()
        for j, sample in enumerate(batch):  # what the stages (and the encode step) would have filled
            if not sample.kept:
                continue
            for turn in sample.spoken_turns():
                if turn.origin != TOKENS:
                    turn.audio, turn.tokens, turn.metrics, sample.flac = clips[(count * 16 + j) % CLIPS]
            if (count * 16 + j) % REJECT_EVERY == 0 and sample.spoken_turns():
                sample.drop("audio_filters", "noise", 3.0, turn=0)
        fill += time.perf_counter() - t
        fill_cpu += time.process_time() - c
        for sample in batch:
            plan.arrive(sample)
        plan.drain(writer.write_kept, writer.write_reject)
        if plan.done:
            break
    else:
        plan.finish(writer.write_kept, writer.write_reject)
    writer.shards.close()
    writer.rejected.close()
    writer.manifest.close()
    seconds = time.perf_counter() - started - fill
    cpu = time.process_time() - cpu_started - fill_cpu
    samples = writer.manifest.kept + writer.manifest.rejected
    return {
        "samples": samples,
        "kept": writer.manifest.kept,
        "seconds": seconds,
        "ms_per_sample": 1000 * seconds / max(1, samples),
        "cpu_ms_per_sample": 1000 * cpu / max(1, samples),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_start / 1024,
    }


def engine_table(sizes: list[int]) -> None:
    results = []
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])  # this checkout's dataengine
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [sys.executable, __file__, "--engine-child", str(n), tmp],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": path},
            )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr)
    base = results[0]["peak_rss_mb"]
    print("ordered part (source, task mix, formatting, shard + manifest writers) with precomputed audio and")
    print("tokens reused: it measures the engine, not the models; one process per size, 2-core machine")
    head = ("samples", "kept", "peak RSS", "vs first", "wall ms/sample", "CPU ms/sample", "wall")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in head) + "|")
    for r in results:
        cells = (
            f"{r['samples']:,}",
            f"{r['kept']:,}",
            f"{r['peak_rss_mb']:.0f} MB",
            f"{r['peak_rss_mb'] / base:.2f}x",
            f"{r['ms_per_sample']:.3f}",
            f"{r['cpu_ms_per_sample']:.3f}",
            f"{r['seconds']:.0f} s",
        )
        print("| " + " | ".join(c.rjust(len(h)) for c, h in zip(cells, head, strict=True)) + " |")
    print("goal: peak RSS at the largest size within 1.2x of the smallest; <= 1 ms per sample")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "demo.yaml")
    parser.add_argument("--limit", type=int, default=160, help="source rows (160: the demo's size)")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--engine", action="store_true", help="the ordered part at --sizes samples instead")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--engine-child", nargs=2, metavar=("N", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_child:
        print(json.dumps(engine_child(int(args.engine_child[0]), Path(args.engine_child[1]))))
        return
    if args.engine:
        engine_table(args.sizes)
        return
    recipe = load_recipe(args.recipe).with_overrides(limit=args.limit)
    stricter = recipe.with_overrides(
        audio_filters={
            **recipe.audio_filters.model_dump(),
            "min_snr_db": recipe.audio_filters.min_snr_db + 5,
        },
        tokenizer={
            **recipe.tokenizer.model_dump(),
            "max_sound_tokens": recipe.tokenizer.max_sound_tokens - 100,
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)

        def cold(name: str, executor: LocalExecutor | RayExecutor) -> BuildSummary:
            cache = StageCache(tmp_path / f"cache-{name}")
            return build(recipe, tmp_path / name, executor=executor, progress=False, cache=cache)

        one = cold("local1", LocalExecutor(1))
        rebuild = build(
            stricter, tmp_path / "rebuild", progress=False, cache=StageCache(tmp_path / "cache-local1")
        )
        two = cold("local2", LocalExecutor(2))
        ray = None if args.no_ray else cold("ray2", RayExecutor(workers=2))

    rows = [
        ("cold build, local, 1 worker", f"{one.wall_seconds:.1f} s", ""),
        (
            "engine overhead: wall / time in TTS+ASR+encoder",
            f"{one.wall_seconds / model_seconds(one):.3f}",
            "goal <= 1.05",
        ),
        ("cold build, local, 2 workers", f"{two.wall_seconds:.1f} s", ""),
        ("speed-up, 2 workers over 1", f"{one.wall_seconds / two.wall_seconds:.2f}x", "goal >= 1.85x"),
        ("rebuild after threshold change", f"{rebuild.wall_seconds:.2f} s", ""),
        ("rebuild / cold build", f"{rebuild.wall_seconds / one.wall_seconds:.3f}", "goal <= 0.03"),
    ]
    if ray is not None:
        rows += [
            ("cold build, Ray, 2 workers (incl. ray.init)", f"{ray.wall_seconds:.1f} s", ""),
            ("Ray / local at 2 workers", f"{ray.wall_seconds / two.wall_seconds:.2f}", ""),
        ]
    print(f"recipe {args.recipe.name}, limit {args.limit}; kept {one.kept}; 2-core machine")
    print(f"| {'measure':<50} | {'value':>9} | {'goal':<13} |")
    print(f"|{'-' * 52}|{'-' * 11}|{'-' * 15}|")
    for name, value, goal in rows:
        print(f"| {name:<50} | {value:>9} | {goal:<13} |")


if __name__ == "__main__":
    main()
