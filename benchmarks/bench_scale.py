"""`make bench`: engine overhead, parallel speed-up, incremental rebuild and Ray vs local, one table.

Every ratio is measured in this one run on the same machine. Cold builds use a fresh, empty stage cache.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dataengine.cache import StageCache
from dataengine.executors import LocalExecutor, RayExecutor
from dataengine.pipeline import BuildSummary, build
from dataengine.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
MODEL_STAGES = ("tts", "asr", "tokenizer")  # the stages that run a model (VAD is a filter)


def model_seconds(summary: BuildSummary) -> float:
    return sum(s.seconds for s in summary.stages if s.name in MODEL_STAGES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "demo.yaml")
    parser.add_argument("--limit", type=int, default=160, help="source rows (160: the demo's size)")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
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
